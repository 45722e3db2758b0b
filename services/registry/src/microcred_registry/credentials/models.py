"""Tables of the credentials context: stored credentials exactly as issuance signed them,
and the projections of the issuer-keys and status-lists topics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class CredentialRecord(SQLModel, table=True):
    __tablename__ = "credentials"
    credential_id: uuid.UUID = Field(primary_key=True)
    assessment_id: uuid.UUID | None = Field(default=None, unique=True)
    provider_id: str = Field(index=True)
    definition_id: str | None = None
    definition_version: int | None = None
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


class _OwnMetadata(SQLModel, registry=registry()):
    """Issuance has a `status_lists` table of its own; in one Python process (the test
    suite) two table models of one name need two MetaData collections."""


class StatusListRecord(_OwnMetadata, table=True):
    """Projection of the compacted status-lists topic: signed lists served as they are."""

    __tablename__ = "status_lists"
    url: str = Field(primary_key=True)
    provider_id: str
    version: int
    credential: dict[str, Any] = Field(sa_type=JSONB)
    published_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class StatusEvent(SQLModel, table=True):
    """Every status change of a credential, with the provider's reason."""

    __tablename__ = "status_events"
    id: int | None = Field(default=None, primary_key=True)
    credential_id: uuid.UUID = Field(index=True)
    action: str
    status: str
    reason: str
    changed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))



async def index_definition_versions(conn: Any) -> None:
    """Migration 5: find a credential of a definition version (its badge is drawn from it)."""
    await conn.execute(sa.text(
        "CREATE INDEX IF NOT EXISTS ix_credentials_definition_version "
        "ON credentials (definition_id, definition_version)"))
