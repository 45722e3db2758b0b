"""Tables for learner access and sharing. Every secret (sign-in token, session id, share
token) is kept only as its SHA-256 digest: they are 256-bit random values, so a slow hash
would add latency and no safety (see docs/decisions/0009-learner-access-and-sharing.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, EmailStr
from pydantic import Field as PydanticField
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from microcred_shared.db import table_of, utcnow

TZ = sa.DateTime(timezone=True)


class SignInToken(SQLModel, table=True):
    """A one-time sign-in link: single use (`used_at`), short-lived (`expires_at`)."""

    __tablename__ = "learner_signin_tokens"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_sha256: str = Field(unique=True)
    learner_key: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)


class SignInAttempt(SQLModel, table=True):
    """Every sign-in request, known learner or not, so the rate limit reveals nothing."""

    __tablename__ = "learner_signin_attempts"
    __table_args__ = (sa.Index("ix_signin_attempts_key_at", "learner_key", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    learner_key: str
    at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class LearnerSession(SQLModel, table=True):
    __tablename__ = "learner_sessions"
    id_sha256: str = Field(primary_key=True)
    learner_key: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    ended_at: datetime | None = Field(default=None, sa_type=TZ)


class CredentialVisibility(SQLModel, table=True):
    """Who may see a credential. No row means `private`: credentials belong to the learner
    and are shown to nobody until the learner says so."""

    __tablename__ = "credential_visibility"
    credential_id: uuid.UUID = Field(primary_key=True)
    learner_key: str = Field(index=True)
    visibility: str = "private"  # private | link | employers | public
    shared_with: list[str] = Field(default_factory=list, sa_type=JSONB)
    # employer id -> ISO time the direct share began (migration 3); shown to the learner.
    shared_since: dict[str, str] = Field(default_factory=dict, sa_type=JSONB)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class ShareLink(SQLModel, table=True):
    __tablename__ = "credential_share_links"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    credential_id: uuid.UUID = Field(index=True)
    learner_key: str
    token_sha256: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime | None = Field(default=None, sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)


class LearnerProfile(SQLModel, table=True):
    """The learner's public profile page `/p/{slug}`: the slug is random, so a profile
    cannot be found from an e-mail address."""

    __tablename__ = "learner_profiles"
    learner_key: str = Field(primary_key=True)
    slug: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


LEARNER_TABLES: list[sa.Table] = [
    table_of(SignInToken), table_of(SignInAttempt), table_of(LearnerSession),
    table_of(CredentialVisibility), table_of(ShareLink), table_of(LearnerProfile),
]


async def add_shared_since(conn: AsyncConnection) -> None:
    """Migration 3: when each direct share began (older shares show no date)."""
    await conn.execute(sa.text("ALTER TABLE credential_visibility ADD COLUMN IF NOT EXISTS "
                               "shared_since JSONB NOT NULL DEFAULT '{}'::jsonb"))


# --- what the learner API takes ------------------------------------------------------


class SignInRequest(BaseModel):
    email: EmailStr
    language: Literal["en", "fr"] | None = None


class VisibilityChange(BaseModel):
    visibility: Literal["private", "link", "employers", "public"]


class ShareCreate(BaseModel):
    expires_at: datetime | None = PydanticField(None, description="when the link stops working")
    expires_in_days: int | None = PydanticField(None, ge=1, le=3650)
