"""LinkedIn's "Add to profile" link for a credential: LinkedIn's certification form,
pre-filled with the credential's name, the issuing organisation, the issue and expiry
month, the credential's URL and its id. Pure: read from the signed document."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

from microcred_registry.credentials.document import localised, moment

ADD_TO_PROFILE = "https://www.linkedin.com/profile/add"


# The link is built for every credential registered (its announcement carries it), and
# `urlencode` quoted each of its values char by char (~5 % of the registry's CPU at 250/s,
# issue 12). The same query, as `urlencode` writes it (`quote_plus` of each value): the
# name, the organisation and the credentials' URL up to the id repeat for every credential
# of a definition, so their quoting is remembered (a value is quoted alike wherever it is
# split between characters).
@lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    return quote_plus(text)


def _quoted_url(url: str) -> str:
    head, slash, tail = url.rpartition("/")
    return _quoted(head + slash) + quote_plus(tail)


def credential_name(doc: dict[str, Any], lang: str = "en") -> str:
    """The achievement's name in `lang` where the credential has it (else English)."""
    subject: Any = doc.get("credentialSubject") or {}
    subject = subject[0] if isinstance(subject, list) and subject else subject
    ach = subject.get("achievement") if isinstance(subject, dict) else None
    return localised(ach, "name", lang) or localised(doc, "name", lang)


def add_to_profile(doc: dict[str, Any], cert_url: str, cert_id: str, lang: str = "en") -> str:
    """The link, or "" when the document lacks a name or an issue date. The name and the
    organisation follow the learner's language where the credential has it; a credential
    without `validUntil` has no expiration fields (LinkedIn then shows no expiry)."""
    name = credential_name(doc, lang)
    issued = moment(doc.get("awardedDate")) or moment(doc.get("validFrom"))
    if not name or issued is None:
        return ""
    query = f"startTask=CERTIFICATION_NAME&name={_quoted(name)}"
    organisation = localised(doc.get("issuer"), "name", lang)
    if organisation:
        query += f"&organizationName={_quoted(organisation)}"
    query += f"&issueYear={issued.year}&issueMonth={issued.month}"
    expires = moment(doc.get("validUntil"))
    if expires is not None:
        query += f"&expirationYear={expires.year}&expirationMonth={expires.month}"
    return f"{ADD_TO_PROFILE}?{query}&certUrl={_quoted_url(cert_url)}&certId={quote_plus(cert_id)}"
