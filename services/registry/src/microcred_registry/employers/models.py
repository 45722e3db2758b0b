"""The registry's projection of the employer directory (`microcred.employers.v1`, published
by notify, which registers and approves employers): enough to name an employer to a learner
and to know whether it may be shared with. Nothing else of an employer reaches the registry."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

TZ = sa.DateTime(timezone=True)


class EmployerEntry(SQLModel, table=True):
    __tablename__ = "employer_directory"
    employer_id: str = Field(primary_key=True)
    organisation: str
    status: str  # pending | approved | suspended
    website: str | None = None
    updated_at: datetime = Field(sa_type=TZ)  # the record's published_at


class EmployerKey(SQLModel, table=True):
    """Projection of `microcred.employers.api-keys.v1`: `mce_<key id>.<secret>` keys as
    digests (sha256 of the secret), so an approved employer can read by id the credentials
    learners share with it (ADR 9). notify mints and revokes them."""

    __tablename__ = "employer_key_digests"  # notify has its own employer_api_keys
    key_id: str = Field(primary_key=True)
    employer_id: str = Field(index=True)
    secret_sha256: str
    created_at: datetime = Field(sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)
