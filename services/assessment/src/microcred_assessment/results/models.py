from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


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


class IngestedResult(SQLModel, table=True):
    """HTTP ingest's ledger: one row per provider result id received over HTTP, so a
    resubmission is told apart from a new result at the door (results.ingest)."""

    __tablename__ = "ingested_results"
    provider_id: str = Field(primary_key=True)
    result_id: str = Field(primary_key=True)
    digest: bytes = Field(sa_type=sa.LargeBinary, description="SHA-256 of the result")
    event_id: str = Field(description="the ce_id it was published with")
    received_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
