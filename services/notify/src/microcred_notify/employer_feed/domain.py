"""Pure rules of the employer feed: who may see a credential, which subscriptions match it,
what changes when visibility changes, retry delays and when an endpoint is disabled, token
buckets, feed cursors, acceptable endpoint URLs, the employer API key format and what the
employer directory tells of an employer. No database, broker or HTTP import."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import random
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from microcred_shared.contract.events_employers import EmployerPublished

SHARED, STATUS_CHANGED, UNSHARED = ("credential.shared", "credential.status.changed",
                                    "credential.unshared")
OPEN_VISIBILITY = frozenset({"public", "employers"})
ISO_3166_2 = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
# The Standard Webhooks-style schedule, in units of the base delay (5 s by default).
RETRY_STEPS = (1, 60, 360, 1440, 3600, 7200, 7200)
DISABLE_AFTER_FAILING_FOR = timedelta(days=5)
KEY_PREFIX = "mce_"


class Filters(BaseModel):
    """A subscription's filter. Every non-empty dimension must match (OR within one):
    e.g. jurisdictions [CA-ON] and skills [Numeracy] means Ontario credentials aligned to
    Numeracy. Empty everywhere: everything visible to the employer."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    definition_ids: list[str] = Field(default=[], max_length=100)
    skills: list[str] = Field(default=[], max_length=100,
                              description="alignment targetName, targetUrl or targetFramework")
    provider_ids: list[str] = Field(default=[], max_length=100)
    jurisdictions: list[str] = Field(default=[], max_length=20, description="ISO 3166-2")

    @field_validator("jurisdictions")
    @classmethod
    def _iso(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not ISO_3166_2.match(v)]
        if bad:
            raise ValueError(f"not ISO 3166-2 subdivision codes: {bad}")
        return values


@dataclass(frozen=True)
class Facts:
    """What filters match on, read from the signed document."""

    provider_id: str
    definition_id: str | None
    jurisdiction: str | None
    skills: frozenset[str]


def _objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects in a value that may be one object, an array of them, or junk."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def facts_of(document: dict[str, Any], provider_id: str, definition_id: str | None) -> Facts:
    """What subscriptions filter on. A VC-API credential may have several subjects (an
    array) and any JSON in them: every subject's achievement counts, and what is not of
    the expected shape is skipped rather than failing the batch."""
    issuer: Any = document.get("issuer") if isinstance(document.get("issuer"), dict) else {}
    address = issuer.get("address") if isinstance(issuer.get("address"), dict) else {}
    region = address.get("addressRegion") or document.get("jurisdiction")
    skills = set()
    for subject in _objects(document.get("credentialSubject")):
        for achievement in _objects(subject.get("achievement")):
            for a in _objects(achievement.get("alignment")):
                for term in ("targetName", "targetUrl", "targetFramework"):
                    if isinstance(a.get(term), str):
                        skills.add(a[term].strip().lower())
    return Facts(provider_id, definition_id, region if isinstance(region, str) else None,
                 frozenset(skills))


def matches(filters: Filters, facts: Facts) -> bool:
    checks = (
        (filters.definition_ids, lambda: facts.definition_id in filters.definition_ids),
        (filters.provider_ids, lambda: facts.provider_id in filters.provider_ids),
        (filters.jurisdictions, lambda: facts.jurisdiction in filters.jurisdictions),
        (filters.skills, lambda: bool(facts.skills & {s.strip().lower() for s in filters.skills})),
    )
    return all(check() for values, check in checks if values)


def visible_to(employer_id: str, visibility: str, shared_with: Iterable[str]) -> bool:
    """The privacy rule: the holder made it public / visible to employers, or shared it with
    this employer directly. Nothing else ever reveals a credential to an employer."""
    return visibility in OPEN_VISIBILITY or employer_id in set(shared_with)


@dataclass(frozen=True)
class Sub:
    id: Any
    employer_id: str
    filters: Filters
    webhook: bool
    webhook_active: bool


def targets(subs: Iterable[Sub], employer_id: str, facts: Facts, direct: bool) -> list[Sub]:
    """The employer's subscriptions an event about this credential goes to. A direct share
    reaches every subscription: the learner chose this employer, its topic filters do not
    get to hide that."""
    return [s for s in subs if s.employer_id == employer_id and (direct or
                                                                 matches(s.filters, facts))]


def transitions(*, facts: Facts, visibility: str, shared_with: list[str],
                exposed: set[str], approved_subs: list[Sub]) -> list[tuple[str, str]]:
    """(employer, SHARED | UNSHARED) for every employer whose view of the credential changes.

    Unshare is decided by the privacy rule alone (even for a suspended employer: it stops);
    share needs, besides, an approved employer with a subscription that wants it."""
    out = [(e, UNSHARED) for e in sorted(exposed) if not visible_to(e, visibility, shared_with)]
    wanting = {s.employer_id for s in approved_subs
               if s.employer_id not in exposed
               and visible_to(s.employer_id, visibility, shared_with)
               and (s.employer_id in shared_with or matches(s.filters, facts))}
    return out + [(e, SHARED) for e in sorted(wanting)]


def retry_delay(attempts: int, base: float, rng: random.Random | None = None) -> timedelta:
    """Full jitter: uniform in [0, step], the step growing along RETRY_STEPS."""
    step = RETRY_STEPS[min(attempts, len(RETRY_STEPS)) - 1] * base
    return timedelta(seconds=(rng or random).uniform(0, step))


def should_disable(consecutive_failures: int, threshold: int, failing_since: datetime | None,
                   now: datetime) -> bool:
    return consecutive_failures >= threshold or (
        failing_since is not None and now - failing_since >= DISABLE_AFTER_FAILING_FOR)


def take_tokens(tokens: float, elapsed: float, *, rate: float, burst: int,
                wanted: int) -> tuple[int, float, float]:
    """Token bucket: (granted, tokens left, seconds until one more token)."""
    available = min(float(burst), tokens + max(elapsed, 0.0) * rate)
    granted = min(wanted, int(math.floor(available)))
    left = available - granted
    wait = 0.0 if left >= 1 else (1 - left) / rate
    return granted, left, wait


def encode_cursor(txid: int, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{txid}.{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        txid, _, row_id = raw.partition(".")
        return int(txid), int(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor this feed returned") from exc


def webhook_url_problem(url: str, allow_loopback_http: bool) -> str | None:
    """Why an endpoint URL is refused, or None. https only; plain http only to 127.0.0.1 when
    the deployment allows it. IP literals in private or loopback ranges are refused."""
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password:
        return "the webhook URL needs a host and no credentials"
    host = parts.hostname
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    loopback_ok = allow_loopback_http and host == "127.0.0.1"
    if parts.scheme == "http" and loopback_ok:
        return None
    if parts.scheme != "https":
        return "webhook endpoints must use https"
    if ip is not None and (ip.is_private or ip.is_loopback or ip.is_link_local
                           or ip.is_reserved) and not loopback_ok:
        return "webhook endpoints must not point at private or loopback addresses"
    if host == "localhost" or host.endswith(".localhost"):
        return "webhook endpoints must not point at localhost"
    return None


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(employer_id: str) -> tuple[str, dict[str, Any]]:
    """An employer API key `mce_<key id>.<secret>` (256-bit secret; only its sha256 is
    kept, as for provider keys in ADR 5) and the row that stores it."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = {"key_id": key_id, "employer_id": employer_id, "secret_sha256": key_digest(secret),
           "created_at": datetime.now(UTC)}
    return f"{KEY_PREFIX}{key_id}.{secret}", row


def split_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed employer key, None otherwise."""
    if not token.startswith(KEY_PREFIX) or "." not in token:
        return None
    key_id, _, secret = token[len(KEY_PREFIX):].partition(".")
    return key_id, secret


def directory_event(row: Any) -> EmployerPublished:
    """What the directory tells of an employer: its name, status and website only (no
    contact person or address, no keys, no webhook endpoints)."""
    return EmployerPublished(employer_id=row.id, organisation=row.organisation,
                             status=row.status, website=row.website,
                             published_at=datetime.now(UTC))
