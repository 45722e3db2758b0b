from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared import projection
from microcred_shared.auth import ApiKey
from microcred_shared.db import SHARED_TABLES, create_tables, table_of, utcnow


class IssuerKey(SQLModel, table=True):
    """A provider's Ed25519 signing key. The private half is AES-256-GCM encrypted under
    the key-encryption key from settings; it never leaves this table in clear."""

    __tablename__ = "issuer_keys"
    provider_id: str = Field(primary_key=True)
    key_id: str = Field(primary_key=True)
    public_multikey: str
    private_encrypted: bytes = Field(sa_type=sa.LargeBinary)
    nonce: bytes = Field(sa_type=sa.LargeBinary)
    status: str = "active"  # active | retired | compromised
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    retired_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class IssuedCredential(SQLModel, table=True):
    __tablename__ = "issued_credentials"
    credential_id: uuid.UUID = Field(primary_key=True)
    assessment_id: uuid.UUID | None = Field(default=None, unique=True)
    provider_id: str = Field(index=True)
    definition_id: str | None = None
    definition_version: int | None = None
    learner_key: str = Field(index=True)
    key_id: str
    status_index: int
    status: str = "active"  # active | revoked | suspended
    issued_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class StatusAllocation(SQLModel, table=True):
    """Next free index in each provider's status lists (one index per credential, shared
    by its revocation and suspension lists)."""

    __tablename__ = "status_allocations"
    provider_id: str = Field(primary_key=True)
    next_index: int = 0


class StatusList(SQLModel, table=True):
    """The bits of one status list; the registry serves the signed credential made of it."""

    __tablename__ = "status_lists"
    provider_id: str = Field(primary_key=True)
    purpose: str = Field(primary_key=True)  # revocation | suspension
    list_no: int = Field(primary_key=True)
    bits: bytes = Field(sa_type=sa.LargeBinary)
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class StackAward(SQLModel, table=True):
    """A stacked credential awarded to a learner. At most one live (not revoked) award per
    stack and learner: the partial unique index is what makes the award exactly once,
    whatever the interleaving of component arrivals (ADR 12)."""

    __tablename__ = "stack_awards"
    __table_args__ = (sa.Index(
        "stack_awards_one_live", "stack_definition_id", "learner_key", unique=True,
        postgresql_where=sa.text("status <> 'revoked'")),)
    credential_id: uuid.UUID = Field(primary_key=True)
    stack_definition_id: str
    learner_key: str = Field(index=True)
    components: list[str] = Field(sa_type=sa.JSON, description="component credential ids")
    status: str = "active"  # active | suspended | revoked, mirrors issued_credentials
    # True while suspended because of a component (reinstated when the rule holds again);
    # a suspension by the issuer itself is never lifted automatically.
    held_by_components: bool = False
    awarded_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


MIGRATIONS = [
    create_tables([*SHARED_TABLES, table_of(ApiKey), table_of(IssuerKey),
                   table_of(IssuedCredential), table_of(StatusAllocation),
                   table_of(StatusList)]),
    create_tables([*projection.TABLES, table_of(StackAward)]),
]
