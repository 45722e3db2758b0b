from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from microcred_shared.db import SHARED_TABLES, create_tables, utcnow
from sqlmodel import Field, SQLModel


class ResultRecord(SQLModel, table=True):
    """One row per provider result: the natural key that makes resubmission a no-op."""

    __tablename__ = "results"
    provider_id: str = Field(primary_key=True)
    result_id: str = Field(primary_key=True)
    assessment_id: uuid.UUID = Field(unique=True)
    definition_id: str
    definition_version: int
    learner_key: str = Field(index=True)
    achieved: bool
    reason: str
    submissions: int = 1
    ce_id: str
    trace_id: str | None = None
    decided_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class ApiKey(SQLModel, table=True):
    """A provider's HTTP ingest credential. Only a SHA-256 digest of the secret is stored:
    the secret is 256 random bits, so a slow password hash would buy nothing."""

    __tablename__ = "api_keys"
    key_id: str = Field(primary_key=True)
    provider_id: str = Field(index=True)
    secret_sha256: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


MIGRATIONS = [create_tables([*SHARED_TABLES, ResultRecord.__table__, ApiKey.__table__])]
