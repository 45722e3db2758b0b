"""Tables of the Open Badges 3.0 API context (ADR 30). Every secret (client secret,
authorization code, access and refresh token) is kept only as its SHA-256 digest: each is
256 random bits, as the other learner secrets (ADR 9)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow

TZ = sa.DateTime(timezone=True)


class ObClient(SQLModel, table=True):
    """A client registered by RFC 7591 dynamic registration."""

    __tablename__ = "ob_clients"
    client_id: str = Field(primary_key=True)
    secret_sha256: str
    client_metadata: dict[str, Any] = Field(sa_type=JSONB)
    redirect_uris: list[str] = Field(sa_type=JSONB)
    scope: list[str] = Field(sa_type=JSONB)
    grant_types: list[str] = Field(sa_type=JSONB)
    auth_method: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class ObGrant(SQLModel, table=True):
    """What a learner approved for a client: its authorization code (single use, short
    lived) and, once redeemed, the tokens issued under it (ObToken). Revoking the grant
    ends every token of it; a replayed code revokes it (RFC 6749 §4.1.2)."""

    __tablename__ = "ob_grants"
    grant_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(index=True)
    learner_key: str = Field(index=True)
    scope: list[str] = Field(sa_type=JSONB)
    redirect_uri: str
    code_sha256: str = Field(unique=True)
    code_challenge: str
    code_expires_at: datetime = Field(sa_type=TZ)
    code_used_at: datetime | None = Field(default=None, sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class ObToken(SQLModel, table=True):
    """An access or refresh token of a grant."""

    __tablename__ = "ob_tokens"
    token_sha256: str = Field(primary_key=True)
    kind: str  # access | refresh
    grant_id: uuid.UUID = Field(index=True)
    expires_at: datetime = Field(sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class BackpackCredential(SQLModel, table=True):
    """A credential issued elsewhere that the learner keeps here (upsertCredential),
    stored as it came once it verified."""

    __tablename__ = "ob_backpack"
    learner_key: str = Field(primary_key=True)
    credential_key: str = Field(primary_key=True)  # the credential's own `id`
    issuer_id: str
    document: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class ObProfile(SQLModel, table=True):
    """The learner's Open Badges Profile (getProfile/putProfile): a random id, so it does
    not reveal the learner key (derivable from an e-mail address, ADR 3)."""

    __tablename__ = "ob_profiles"
    learner_key: str = Field(primary_key=True)
    profile_id: str = Field(unique=True)
    fields: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


OB_API_TABLES: list[type[SQLModel]] = [ObClient, ObGrant, ObToken, BackpackCredential,
                                       ObProfile]


async def index_credential_ids(conn: AsyncConnection) -> None:
    """Migration 12: upsertCredential asks whether a credential's `id` is one issued here."""
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_credentials_document_id "
                               "ON credentials ((document->>'id'))"))
