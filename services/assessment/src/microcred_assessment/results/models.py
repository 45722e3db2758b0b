from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class ResultRecord(SQLModel, table=True):
    """One row per provider result: the natural key that makes resubmission a no-op.
    `assessment_id` is derived from that key (`domain.assessment_id_for`, UUIDv5), so it is
    unique by construction: no unique index of its own (migration 6, ADR 40)."""

    __tablename__ = "results"
    provider_id: str = Field(primary_key=True)
    result_id: str = Field(primary_key=True)
    assessment_id: uuid.UUID
    definition_id: str
    definition_version: int
    learner_key: str  # not indexed: no query finds results by learner (migration 7)
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


async def drop_unique_assessment_id(conn: AsyncConnection) -> None:
    """Migration 6 (ADR 40): `results` keeps one unique index, its primary key, the one
    conflict the decision's `INSERT … ON CONFLICT (provider_id, result_id)` handles. With a
    second one (on `assessment_id`), two transactions deciding the same new result at once
    (an HTTP flush and a Kafka batch, now that both decide) could fail the later one with a
    unique violation on it instead of counting a resubmission: PostgreSQL applies ON
    CONFLICT to the arbiter index only."""
    await conn.execute(sa.text(
        "ALTER TABLE results DROP CONSTRAINT IF EXISTS results_assessment_id_key"))


async def drop_unread_learner_index(conn: AsyncConnection) -> None:
    """Migration 7 (issue 12, wave 18): `results` loses `ix_results_learner_key`. No query
    reads results by learner (a result is found by its primary key, the provider's result
    id; a learner's credentials are the registry's), yet every decision wrote an entry in
    it: 85-190 B of WAL and ~7 µs of the server's CPU per result (bench/e2e/README.md,
    wave 18). A database created after this step never has it (the model no longer asks for
    it); one that has it loses it here. Instant, no table rewrite."""
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_results_learner_key"))
