"""Versioned event payloads exchanged over Kafka, and their CloudEvents types.

Events are facts, named in the past tense. Each payload class carries its CloudEvents
`ce_type`; the envelope (id, source, time, trace context) travels in Kafka headers, see
`microcred_shared.contract.cloudevents`.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

import idna
from pydantic import BaseModel, ConfigDict, EmailStr, Field

NAMESPACE = uuid.UUID("6c1f3c52-5f0e-4d8e-9a51-2f1b7b0d6a10")


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


def learner_key(email: str) -> str:
    """The backbone's learner id: one per mailbox, the same across providers.

    Providers know a learner by their own student number; the address the learner gave is
    the one identifier that every provider shares. See docs/decisions/0003-learner-identity.md.
    """
    return str(uuid.uuid5(NAMESPACE, "learner:" + normalize_email(email)))


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

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=200, description="the provider's own learner id")
    email: str = Field(min_length=3, max_length=320)
    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    language: Literal["en", "fr"] = "en"

    @property
    def full_name(self) -> str:
        return self.display_name or f"{self.given_name} {self.family_name}"


class Learner(KnownLearner):
    """A learner as a provider reports them: the address is validated here, once."""

    email: EmailStr


class AssessmentResultSubmitted(Event):
    """A partner institution reported an assessment outcome."""

    ce_type: ClassVar[str] = "ca.microcred.assessment.result.submitted.v1"
    provider_id: str = Field(min_length=1, max_length=100)
    result_id: str = Field(min_length=1, max_length=200, description="unique per provider")
    definition_id: str = Field(min_length=1, max_length=200)
    learner: Learner
    score: float | None = None
    rubric_level: str | None = Field(default=None, max_length=100)
    passed: bool | None = None
    assessed_at: datetime
    evidence_url: str | None = Field(default=None, max_length=2000)

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
