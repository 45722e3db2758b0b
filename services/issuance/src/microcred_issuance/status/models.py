from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class IssuedCredential(SQLModel, table=True):
    """The register of issued credentials and where each one's status lives. The issuing
    context inserts a row per credential; this context moves `status`; stacks reads a
    learner's active rows. Kept here, the lowest context that needs it, so that issuing
    and stacks may both depend on status and nothing depends upward."""

    __tablename__ = "issued_credentials"
    credential_id: uuid.UUID = Field(primary_key=True)
    assessment_id: uuid.UUID | None = Field(default=None, unique=True)
    provider_id: str  # not indexed: no query finds issued credentials by issuer (migration 8)
    definition_id: str | None = None
    definition_version: int | None = None
    learner_key: str = Field(index=True)
    key_id: str
    status_index: int
    status: str = "active"  # active | revoked | suspended
    # Whether it carries a suspension entry (ADR 8). Rows from before the flag existed do
    # (migration 5 sets them true); new ones as their definition says.
    suspendable: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
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
