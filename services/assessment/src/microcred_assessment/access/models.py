from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


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
