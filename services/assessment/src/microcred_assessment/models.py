from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared import projection
from microcred_shared.auth import ApiKey
from microcred_shared.db import SHARED_TABLES, create_tables, table_of, utcnow


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


class AuditEntry(SQLModel, table=True):
    """The audit log operators query: refusals and operator changes (AuditRecorded events
    from every service end up here)."""

    __tablename__ = "audit_log"
    audit_id: uuid.UUID = Field(primary_key=True)
    recorded_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)
    service: str
    channel: str
    actor: str
    provider_id: str | None = Field(default=None, index=True)
    action: str
    outcome: str
    reason: str
    details: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)


class KafkaPrincipal(SQLModel, table=True):
    """A provider's SCRAM user on the broker (the broker keeps the verifier; we keep no
    password at all)."""

    __tablename__ = "kafka_principals"
    provider_id: str = Field(primary_key=True)
    username: str
    topic: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    rotated_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


MIGRATIONS = [
    create_tables([*SHARED_TABLES, table_of(ResultRecord), table_of(ApiKey)]),
    create_tables([*projection.TABLES, table_of(AuditEntry), table_of(KafkaPrincipal)]),
]
