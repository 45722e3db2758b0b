"""The learner mail's one table: each message owed to a learner and its delivery state."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class Notification(SQLModel, table=True):
    """A message owed to a learner. Delivery is a small state machine kept in the database:
    pending → delivered, or pending → (retries) → failed and dead-lettered."""

    __tablename__ = "notifications"
    # The due index holds the pending rows only (migration 7).
    __table_args__ = (sa.UniqueConstraint("credential_id", "kind"),
                      sa.Index("ix_notifications_due", "next_attempt_at",
                               postgresql_where=sa.text("status = 'pending'")))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    credential_id: uuid.UUID
    kind: str = "credential-issued"  # or status-<action>:<event id>, or learner-signin
    recipient: str
    learner_name: str
    language: str = "en"
    title: str
    url: str
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    last_error: str | None = None
    # The provider's reason (status mail), the LinkedIn link (credential mail), the expiry
    # (sign-in mail), the transaction code and its expiry (wallet transaction code mail,
    # blanked once sent).
    detail: str | None = None
    # The credential mail's "Add to wallet": the wallet's deep link and its QR code's URL.
    wallet_url: str | None = None
    wallet_qr_url: str | None = None
    message_id: str
    traceparent: str | None = None
    source_topic: str
    source_payload: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    delivered_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


async def add_wallet_links(conn: AsyncConnection) -> None:
    """Migration 4: the credential mail's "Add to wallet" link and QR code (ADR 31)."""
    for column in ("wallet_url", "wallet_qr_url"):
        await conn.execute(sa.text(f"ALTER TABLE notifications ADD COLUMN IF NOT EXISTS "
                                   f"{column} TEXT"))


async def index_only_pending_mail(conn: AsyncConnection) -> None:
    """Migration 7: the due index (the claim's: `status = 'pending' AND next_attempt_at <=
    now() ORDER BY next_attempt_at`) holds the pending rows only (issue 12, wave 16).

    It held every row, keyed by (status, next_attempt_at). A mail's row is written twice,
    inserted owed and updated once its outcome is known, and that update changes `status`,
    so it is never a HOT update whatever the index: the row's new version took a new entry
    in each of the three indexes, this one included, and the index kept an entry for every
    mail ever sent, delivered or failed, none of which a claim reads. Now a delivered or
    failed row's version gets no entry here, and the index stays as small as the queue of
    mail owed. The claim's query is unchanged (its condition implies the index's)."""
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_notifications_due"))
    await conn.execute(sa.text("CREATE INDEX ix_notifications_due ON notifications "
                               "(next_attempt_at) WHERE status = 'pending'"))
