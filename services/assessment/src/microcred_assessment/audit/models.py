from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


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
