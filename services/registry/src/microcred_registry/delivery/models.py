"""The wallet exchanges: one per "Add to wallet", single-use, expiring (ADR 27)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow

TZ = sa.DateTime(timezone=True)


class WalletExchange(SQLModel, table=True):
    __tablename__ = "wallet_exchanges"
    exchange_id: uuid.UUID = Field(primary_key=True)
    credential_id: uuid.UUID  # not indexed: exchanges are read by their id (migration 16)
    learner_key: str
    challenge: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    failures: int = 0
    used_at: datetime | None = Field(default=None, sa_type=TZ)
    holder: str | None = None  # the DID the credential was bound to
    copy_id: str | None = None  # the holder-bound copy's id
