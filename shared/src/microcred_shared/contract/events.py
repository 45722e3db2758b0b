"""Versioned event payloads exchanged over Kafka, and their CloudEvents types.

Events are facts, named in the past tense. Each payload class carries its CloudEvents
`ce_type`; the envelope (id, source, time, trace context) travels in Kafka headers, see
`microcred_shared.contract.cloudevents`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import idna
from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field
from pydantic.networks import validate_email

from microcred_shared.contract.ids import name_id_text

NAMESPACE = uuid.UUID("6c1f3c52-5f0e-4d8e-9a51-2f1b7b0d6a10")
_NAMESPACE_BYTES = NAMESPACE.bytes


def normalize_email(email: str) -> str:
    """The form of an address that the learner key is derived from (ADR 3): trimmed, NFC,
    lower case, and the domain in its IDNA ASCII form, so that `ana@École.ca` and
    `ana@xn--cole-9oa.ca` are one mailbox. Nothing else is folded: dots and `+tags` are
    kept, since only some mail hosts ignore them and folding them could merge two people.
    ASCII addresses give exactly `strip().lower()`, the rule keys were first made with."""
    text = unicodedata.normalize("NFC", email.strip()).lower()
    local, at, domain = text.rpartition("@")
    if not at or domain.isascii():
        return text
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        pass  # not a valid IDN: keep the lower-cased text (still one key per spelling)
    return f"{local}@{domain}"


# Pure, and asked twice per result in assessment (the record's Kafka key at ingest, the
# decision's learner key): remembered for the addresses of the last few seconds' results.
@functools.lru_cache(maxsize=16_384)
def learner_key(email: str) -> str:
    """The backbone's learner id: one per mailbox, the same across providers.

    Providers know a learner by their own student number; the address the learner gave is
    the one identifier that every provider shares. See docs/decisions/0003-learner-identity.md.
    """
    return name_id_text(_NAMESPACE_BYTES, "learner:" + normalize_email(email))


# RFC 3339 `date-time` (what the JSON Schema's "format": "date-time" means): a full date,
# a full time and an offset. Numbers (Unix times), date-only and offset-less strings are not.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_only(value: Any) -> Any:
    """Pydantic's lax datetime takes 12345 or "12345" as a Unix time and "2026-11-03" as
    midnight: a provider's mistake became a credential dated 1970 (issue 13). Checked before
    pydantic parses, so the rule is the same for JSON (Kafka: `model_validate_json`) and
    parsed JSON (FastAPI validates the body in python mode)."""
    if isinstance(value, datetime):
        return value  # built in code, not parsed: `check` still refuses a naive one
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 date-time string, not a {_json_kind(value)}")
    if not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with a time zone offset, "
                         "e.g. 2026-11-03T14:30:00Z")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", type(None): "null"}.get(type(value), "value")


# A date-time a provider sends: an RFC 3339 string, strictly (see `_rfc3339_only`).
Rfc3339DateTime = Annotated[datetime, BeforeValidator(_rfc3339_only)]

EVENT_TYPES: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Base of every event. Subclasses register their `ce_type` as they are defined, so an
    event module elsewhere (a service's own events) is decodable once imported."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ce_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ce_type = cls.__dict__.get("ce_type")
        if ce_type:
            if ce_type in EVENT_TYPES and EVENT_TYPES[ce_type].__qualname__ != cls.__qualname__:
                raise TypeError(f"two event classes claim ce_type {ce_type!r}")
            EVENT_TYPES[ce_type] = cls

    def key(self) -> bytes:
        """Kafka key: keeps per-learner order."""
        raise NotImplementedError


class KnownLearner(BaseModel):
    """A learner whose address the backbone already validated at ingest (see `Learner`).
    Events after the first hop carry this: `email_validator` at every hop was 3-5 % of each
    service's CPU in the e2e benchmark, and the producer of those events is the backbone."""

    # strict=True per field, not per model: the same in JSON and python mode (issue 13).
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=200, description="the provider's own learner id",
                    strict=True)
    email: str = Field(min_length=3, max_length=320, strict=True)
    given_name: str = Field(min_length=1, max_length=200, strict=True)
    family_name: str = Field(min_length=1, max_length=200, strict=True)
    display_name: str | None = Field(default=None, max_length=200, strict=True)
    language: Literal["en", "fr"] = "en"  # a literal never coerces

    @property
    def full_name(self) -> str:
        return self.display_name or f"{self.given_name} {self.family_name}"


@functools.lru_cache(maxsize=65_536)
def _checked_email(address: str) -> str:
    return _validated_email(address)


# A plain address: an ASCII dot-atom local part of letters, digits and `_+-`, one @, an
# ASCII domain. For such an address `email_validator` judges the local part by one regular
# expression and the domain on its own, character by character (UTS-46, IDNA): that is
# most of its ~70 µs, and the domains of a batch are few (an institution's, a few mail
# hosts'). So the domain's verdict is remembered, and the address is put together as the
# validator would: the local part as written, the domain as normalised (issue 12).
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9.-]+")
# email_validator lower-cases these local parts (RFC 2142); they take the validator's path.
_ROLE_MAILBOXES = frozenset({"info", "marketing", "sales", "support", "abuse", "noc",
                             "security", "postmaster", "hostmaster", "usenet", "news",
                             "webmaster", "www", "uucp", "ftp"})
_MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3, as email_validator counts it (UTF-8 bytes)


def _validated_email(address: str) -> str:
    """What pydantic's `validate_email(address)[1]` returns, or its error."""
    if len(address) <= _MAX_ADDRESS and _PLAIN_ADDRESS.fullmatch(address):
        local, _, domain = address.partition("@")
        if local.lower() not in _ROLE_MAILBOXES and (known := _plain_domain(domain)):
            return f"{local}@{known}"
    return validate_email(address)[1]


@functools.lru_cache(maxsize=4096)
def _plain_domain(domain: str) -> str | None:
    """The domain as the validator normalises it, when `x@domain` is valid and the domain
    stays ASCII (only its case changes): then the validator's length checks of an address
    are its length, and the rest of its work is the local part's. Otherwise None: the
    validator judges the whole address (and says why it is refused)."""
    try:
        normalised = validate_email("x@" + domain)[1][2:]
    except ValueError:  # pydantic's error for a refused address is a ValueError
        return None
    return normalised if normalised == domain.lower() else None


if TYPE_CHECKING:  # as pydantic itself declares EmailStr to type checkers
    _Email = str
else:
    class _Email(EmailStr):
        """pydantic's EmailStr (same JSON Schema, same errors) remembering the addresses it
        accepted: assessment checks a result's address when HTTP ingest takes it and again when
        its consumer reads the same result from Kafka, and a batch names the same learners over
        and over; `email_validator` was about 14 % of an HTTP request. A refused address raises
        every time (lru_cache keeps no exceptions)."""

        @classmethod
        def _validate(cls, input_value: str, /) -> str:
            return _checked_email(input_value)


class Learner(KnownLearner):
    """A learner as a provider reports them: the address is validated here, once."""

    email: _Email = Field(strict=True)


class AssessmentResultSubmitted(Event):
    """A partner institution reported an assessment outcome."""

    # Parsed strictly, field by field, whichever way it came (HTTP or Kafka): no string as
    # a number or a boolean, no number as a date (issue 13). The JSON Schema is unchanged:
    # it always said string date-time, boolean, number.
    ce_type: ClassVar[str] = "ca.microcred.assessment.result.submitted.v1"
    provider_id: str = Field(min_length=1, max_length=100, strict=True)
    result_id: str = Field(min_length=1, max_length=200, description="unique per provider",
                           strict=True)
    definition_id: str = Field(min_length=1, max_length=200, strict=True)
    learner: Learner
    score: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    rubric_level: str | None = Field(default=None, max_length=100, strict=True)
    passed: bool | None = Field(default=None, strict=True)
    assessed_at: Rfc3339DateTime
    evidence_url: str | None = Field(default=None, max_length=2000, strict=True)

    def key(self) -> bytes:
        return learner_key(self.learner.email).encode()


class AssessmentDecided(Event):
    """assessment judged a result against its definition's pass rule."""

    ce_type: ClassVar[str] = "ca.microcred.assessment.decided.v1"
    assessment_id: uuid.UUID
    provider_id: str
    result_id: str
    definition_id: str
    definition_version: int
    learner: KnownLearner  # a `Learner` validated by assessment; not re-validated here
    learner_key: str
    achieved: bool
    reason: str
    score: float | None = None
    rubric_level: str | None = None
    assessed_at: datetime
    decided_at: datetime

    def key(self) -> bytes:
        return self.learner_key.encode()


class CredentialIssued(Event):
    """issuance signed a credential; `credential` is the complete signed document.

    Credentials issued through the VC-API have no assessment, definition or known mailbox:
    those fields are then empty."""

    ce_type: ClassVar[str] = "ca.microcred.credential.issued.v1"
    credential_id: uuid.UUID
    assessment_id: uuid.UUID | None = None
    provider_id: str
    definition_id: str | None = None
    definition_version: int | None = None
    learner_key: str
    learner_email: str | None = None
    learner_name: str | None = None
    learner_language: Literal["en", "fr"] = "en"
    title: str
    issued_at: datetime
    credential: dict[str, Any]

    def key(self) -> bytes:
        return self.learner_key.encode()


class CredentialRegistered(Event):
    """registry stored a credential and serves it."""

    ce_type: ClassVar[str] = "ca.microcred.credential.registered.v1"
    credential_id: uuid.UUID
    provider_id: str
    definition_id: str | None = None
    learner_key: str
    learner_email: str | None = None
    learner_name: str | None = None
    learner_language: Literal["en", "fr"] = "en"
    title: str
    url: str
    registered_at: datetime
    # LinkedIn's "Add to profile" form for it, pre-filled in the learner's language.
    linkedin_url: str | None = None
    # "Add to wallet" for the issue mail (ADR 31): the Learner Credential Wallet's deep link
    # to a single-use, expiring VC-API exchange, and the URL of its QR code (PNG).
    wallet_url: str | None = None
    wallet_qr_url: str | None = None

    def key(self) -> bytes:
        return self.learner_key.encode()


class NotificationDelivered(Event):
    ce_type: ClassVar[str] = "ca.microcred.notification.delivered.v1"
    notification_id: uuid.UUID
    credential_id: uuid.UUID
    channel: Literal["email"] = "email"
    recipient: str
    attempts: int
    delivered_at: datetime

    def key(self) -> bytes:
        return str(self.credential_id).encode()


class NotificationFailed(Event):
    ce_type: ClassVar[str] = "ca.microcred.notification.failed.v1"
    notification_id: uuid.UUID
    credential_id: uuid.UUID
    channel: Literal["email"] = "email"
    recipient: str
    attempts: int
    reason: str
    failed_at: datetime

    def key(self) -> bytes:
        return str(self.credential_id).encode()


class IssuerPublicKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key_id: str
    public_multikey: str
    status: Literal["active", "retired", "compromised"]
    created_at: datetime
    retired_at: datetime | None = None


class IssuerKeysPublished(Event):
    """The public half of a provider's key set changed (compacted topic, keyed by provider)."""

    ce_type: ClassVar[str] = "ca.microcred.issuer.keys.published.v1"
    provider_id: str
    profile: dict[str, Any]
    keys: list[IssuerPublicKey]
    published_at: datetime

    def key(self) -> bytes:
        return self.provider_id.encode()


class ProviderApiKeyChanged(Event):
    """A provider API key was minted or revoked (compacted topic, keyed by key id). Carries
    only the SHA-256 digest of the secret."""

    ce_type: ClassVar[str] = "ca.microcred.provider.api-key.changed.v1"
    key_id: str
    provider_id: str
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None

    def key(self) -> bytes:
        return self.key_id.encode()


class CredentialStatusChanged(Event):
    """The issuing provider revoked, suspended or reinstated a credential."""

    ce_type: ClassVar[str] = "ca.microcred.credential.status.changed.v1"
    credential_id: uuid.UUID
    provider_id: str
    learner_key: str
    status: Literal["active", "revoked", "suspended"]
    action: Literal["revoke", "suspend", "unsuspend"]
    reason: str
    changed_at: datetime

    def key(self) -> bytes:
        return self.learner_key.encode()


class StatusListPublished(Event):
    """A signed BitstringStatusListCredential to serve at `url` (compacted, keyed by url)."""

    ce_type: ClassVar[str] = "ca.microcred.status-list.published.v1"
    url: str
    provider_id: str
    purpose: Literal["revocation", "suspension"]
    version: int
    credential: dict[str, Any]
    published_at: datetime

    def key(self) -> bytes:
        return self.url.encode()
