"""What a person reads on a credential page, taken from the signed document and the live
verification result. Pure: no I/O, so the page's content is unit-tested."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from microcred_registry.credentials.document import localised, moment
from microcred_registry.pages.badges import badge_of, image_of
from microcred_registry.pages.i18n import long_date, province_name

STATUSES = ("valid", "revoked", "suspended", "expired", "unknown", "not-yet-valid", "invalid")


@dataclass
class CredentialView:
    holder: str
    title: str
    description: str
    outcomes: list[str]
    skills: list[dict[str, str]]
    issuer_name: str
    issuer_url: str
    province: str
    province_code: str
    credits: str
    level: str
    workload: list[str]
    issued: str
    valid_until: str
    status: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    issuer_reason: str = ""
    image: str = ""
    image_alt: str = ""
    # On the trust list of providers in good standing (ADR 26); None: not looked up.
    registered: bool | None = None


def listed(doc: dict[str, Any], lang: str, fallback_title: str = "") -> tuple[str, str]:
    """A credential's title and issuer name in the reader's language, as a list shows
    them (the names the credential states, not the register's ids)."""
    subject: Any = doc.get("credentialSubject")
    subject = subject if isinstance(subject, dict) else {}
    ach: Any = subject.get("achievement") if isinstance(subject.get("achievement"), dict) else {}
    issuer: Any = doc.get("issuer") if isinstance(doc.get("issuer"), dict) else {}
    title = localised(ach, "name", lang) or localised(doc, "name", lang) or fallback_title
    return title, localised(issuer, "name", lang)


def outcomes_of(narrative: str) -> list[str]:
    """Issuance writes the outcomes as a heading and one `- ` line each; any other narrative
    is shown as one paragraph."""
    lines = [line.strip() for line in narrative.splitlines() if line.strip()]
    items = [line[2:].strip() for line in lines if line.startswith("- ")]
    return items or lines


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value or "")


def image_and_alt(doc: dict[str, Any], lang: str, fallback: str = "") -> tuple[str, str]:
    """The achievement's image (the one the credential names, else `fallback`: the badge
    drawn for its definition version) and its text alternative in the reader's language
    (the credential's own caption for English readers when it has one)."""
    url, caption = image_of(doc)
    if not url.startswith(("https://", "http://")):
        url = ""  # a data: URI or anything else is not shown
    url = url or fallback
    if not url:
        return "", ""
    return url, (caption if lang == "en" and caption else badge_of(doc, lang).alt)


def _check_name(check: str, doc: dict[str, Any]) -> str:
    """The status check is named for what the credential can show: most credentials carry
    a revocation entry only; those of a suspendable definition a suspension entry too
    (ADR 8)."""
    if check != "status":
        return check
    status = doc.get("credentialStatus")
    entries = status if isinstance(status, list) else [status]
    purposes = {e.get("statusPurpose") for e in entries if isinstance(e, dict)}
    return "revocation" if purposes == {"revocation"} else check


def present(doc: dict[str, Any], verification: dict[str, Any], lang: str, t: Any,
            issuer_reason: str = "", image_fallback: str = "") -> CredentialView:
    # JSON of any shape: each step below checks what it reads.
    subject: Any = doc.get("credentialSubject") or {}
    # Several subjects (VC-API callers may send them): the page shows the first one's.
    subject = next((s for s in subject if isinstance(s, dict)), {}) if isinstance(
        subject, list) else subject if isinstance(subject, dict) else {}
    ach = subject.get("achievement") if isinstance(subject.get("achievement"), dict) else {}
    issuer: Any = doc.get("issuer") if isinstance(doc.get("issuer"), dict) else {}
    address = issuer.get("address") or {}
    region = address.get("addressRegion") or doc.get("jurisdiction") or ""
    criteria = ach.get("criteria") or {}
    level = ach.get("level") or {}
    workload = ach.get("notionalWorkload") or {}
    status = verification.get("status", "unknown")
    image, image_alt = image_and_alt(doc, lang, image_fallback)
    return CredentialView(
        holder=str(subject.get("name") or ""),
        title=localised(ach, "name", lang) or localised(doc, "name", lang),
        description=localised(ach, "description", lang),
        outcomes=outcomes_of(localised(criteria, "narrative", lang)),
        skills=[{"name": str(a.get("targetName", "")), "framework": str(
            a.get("targetFramework", "")), "url": str(a.get("targetUrl", ""))}
            for a in ach.get("alignment") or [] if isinstance(a, dict)],
        issuer_name=localised(issuer, "name", lang),
        issuer_url=str(issuer.get("url") or ""),
        province=province_name(region, lang), province_code=str(region),
        credits=_number(subject.get("creditsEarned", ach.get("creditsAvailable"))),
        level=" ".join(str(level.get(k)) for k in ("framework", "value") if level.get(k)),
        workload=[t(unit, n=_number(workload[unit])) for unit in ("hours", "ects")
                  if workload.get(unit) is not None],
        issued=long_date(moment(doc.get("awardedDate") or doc.get("validFrom")
                             or doc.get("issuanceDate")), lang),  # the last: VC 1.1
        valid_until=long_date(moment(doc.get("validUntil") or doc.get("expirationDate")), lang),
        status=status if status in STATUSES else "unknown",
        checks=[{"name": _check_name(c["check"], doc), "ok": c["ok"],
                 "detail": c.get("detail", "")} for c in verification.get("checks", [])],
        reasons=list(verification.get("problems", [])),
        issuer_reason=issuer_reason,
        image=image, image_alt=image_alt,
    )
