from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from microcred_shared.db import SHARED_TABLES, create_tables, utcnow
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class CredentialRecord(SQLModel, table=True):
    __tablename__ = "credentials"
    credential_id: uuid.UUID = Field(primary_key=True)
    assessment_id: uuid.UUID = Field(unique=True)
    provider_id: str = Field(index=True)
    definition_id: str
    definition_version: int
    learner_key: str = Field(index=True)
    title: str
    document: dict[str, Any] = Field(sa_type=JSONB)
    status: str = "active"  # active | revoked | suspended
    issued_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    registered_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class IssuerRecord(SQLModel, table=True):
    """Projection of the compacted issuer-keys topic: what /issuers/{id} serves."""

    __tablename__ = "issuers"
    provider_id: str = Field(primary_key=True)
    profile: dict[str, Any] = Field(sa_type=JSONB)
    keys: list[dict[str, Any]] = Field(sa_type=JSONB)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


MIGRATIONS = [create_tables([*SHARED_TABLES, CredentialRecord.__table__,
                             IssuerRecord.__table__])]
