"""The employer directory: who the employers are, as notify (which registers and approves
them) announces them to services that only need to name them, e.g. the registry showing a
learner whom a credential is shared with. Only what a learner may see travels here: never
keys, webhook endpoints or secrets, nor the contact person or address."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from microcred_shared.contract.events import Event

EmployerStatus = Literal["pending", "approved", "suspended"]


class EmployerPublished(Event):
    """The current public facts of one employer, published on every change (registration,
    approval, suspension, a new name). The topic is compacted by employer id: the newest
    record is the employer's state; `published_at` orders records of one employer."""

    ce_type: ClassVar[str] = "ca.microcred.employer.published.v1"
    employer_id: str = Field(min_length=2, max_length=64)
    organisation: str = Field(min_length=1, max_length=200)
    status: EmployerStatus
    website: str | None = Field(default=None, max_length=2000)
    published_at: datetime

    def key(self) -> bytes:
        return self.employer_id.encode()


class EmployerApiKeyChanged(Event):
    """An employer API key was minted (operator approval) or revoked (suspension), on the
    compacted `microcred.employers.api-keys.v1` keyed by key id. Carries only the SHA-256
    digest of the secret (as ProviderApiKeyChanged): the registry checks `mce_...` keys
    with it so that an employer reads the credentials learners share with it (ADR 9)."""

    ce_type: ClassVar[str] = "ca.microcred.employer.api-key.changed.v1"
    key_id: str = Field(min_length=1, max_length=64)
    employer_id: str = Field(min_length=2, max_length=64)
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    revoked_at: datetime | None = None

    def key(self) -> bytes:
        return self.key_id.encode()
