from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class StackAward(SQLModel, table=True):
    """A stacked credential awarded to a learner. At most one live (not revoked) award per
    stack and learner: the partial unique index is what makes the award exactly once,
    whatever the interleaving of component arrivals (ADR 12)."""

    __tablename__ = "stack_awards"
    __table_args__ = (sa.Index(
        "stack_awards_one_live", "stack_definition_id", "learner_key", unique=True,
        postgresql_where=sa.text("status <> 'revoked'")),)
    credential_id: uuid.UUID = Field(primary_key=True)
    stack_definition_id: str
    learner_key: str = Field(index=True)
    components: list[str] = Field(sa_type=sa.JSON, description="component credential ids")
    status: str = "active"  # active | suspended | revoked, mirrors issued_credentials
    # True while suspended because of a component (reinstated when the rule holds again);
    # a suspension by the issuer itself is never lifted automatically.
    held_by_components: bool = False
    awarded_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
