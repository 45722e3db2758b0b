"""Tables of the employer feed: employers and their keys, subscriptions, notify's own
projection of credentials and of who may see them, the per-employer event log (the pull
feed), webhook deliveries with every attempt, and rate-limit buckets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from microcred_shared.db import table_of, utcnow

TZ = sa.DateTime(timezone=True)


class Employer(SQLModel, table=True):
    __tablename__ = "employers"
    id: str = Field(primary_key=True)
    organisation: str
    contact_name: str
    contact_email: str
    website: str | None = None
    status: str = "pending"  # pending | approved | suspended
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    approved_at: datetime | None = Field(default=None, sa_type=TZ)
    suspended_at: datetime | None = Field(default=None, sa_type=TZ)


class EmployerApiKey(SQLModel, table=True):
    """`mce_<key id>.<secret>`; only sha256(secret) is kept (as for provider keys, ADR 5)."""

    __tablename__ = "employer_api_keys"
    key_id: str = Field(primary_key=True)
    employer_id: str = Field(index=True)
    secret_sha256: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)


class Subscription(SQLModel, table=True):
    __tablename__ = "employer_subscriptions"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    employer_id: str = Field(index=True)
    filters: dict[str, Any] = Field(sa_type=JSONB)
    webhook_url: str | None = None
    # AES-GCM ciphertext of the whsec_ secret (its nonce beside it), bound to this row.
    secret_encrypted: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    secret_nonce: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    status: str = "active"  # active | disabled (webhook off, feed on) | deleted
    disabled_reason: str | None = None
    consecutive_failures: int = 0  # dead-lettered deliveries since the last success
    failing_since: datetime | None = Field(default=None, sa_type=TZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class CredentialView(SQLModel, table=True):
    """notify's projection of one credential: the signed document and the facts filters
    match on (from credentials.issued), its status, and its holder's visibility choice."""

    __tablename__ = "employer_credential_view"
    credential_id: uuid.UUID = Field(primary_key=True)
    learner_key: str
    provider_id: str
    definition_id: str | None = None
    jurisdiction: str | None = None
    skills: list[str] = Field(default_factory=list, sa_type=JSONB)
    # The signed JSON as the event carried it (`json`, not `jsonb`: migration 6).
    document: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    status: str = "active"
    visibility: str = "private"
    shared_with: list[str] = Field(default_factory=list, sa_type=JSONB)
    visibility_changed_at: datetime | None = Field(default=None, sa_type=TZ)


async def keep_view_documents_in_row(conn: AsyncConnection) -> None:
    """Migration 6: a view's document is kept as the text of the event's `credential`
    member (`json`), compressed, in its row (`STORAGE MAIN`), as registry keeps its
    credentials (its migration 14).

    As `jsonb`, each credentials.issued parsed the whole ~4.3 KB event into jsonb to take
    its member, and the ~4.5 KB binary document was compressed and moved out to the TOAST
    table (its own rows and index entries): notify's most expensive statement per
    credential (bench/e2e/README.md, wave 13). As text the database only checks the event's
    syntax, the document compresses to ~2.1 KB and stays in the row. Nothing queries
    inside it: the feed hands it out whole (parsed in Python, as before).
    Its other columns are kept in the row too (MAIN): past ~2 KB a row's EXTENDED values,
    however small (the learner's key, the skills), are moved out one by one to bring it
    back under ~2 KB, each a TOAST row to write and to read back.
    Rewrites the table (ALTER ... TYPE): on a large existing view, plan the time."""
    await conn.execute(sa.text(
        "ALTER TABLE employer_credential_view "
        "ALTER COLUMN document TYPE json USING CAST(document AS json), "
        + ", ".join(f"ALTER COLUMN {c} SET STORAGE MAIN" for c in (
            "document", "learner_key", "provider_id", "definition_id", "jurisdiction",
            "skills", "status", "visibility", "shared_with"))))


class Exposure(SQLModel, table=True):
    """Whether an employer currently holds a credential (told `shared`, not yet `unshared`)."""

    __tablename__ = "employer_exposures"
    employer_id: str = Field(primary_key=True)
    credential_id: uuid.UUID = Field(primary_key=True, index=True)
    visible: bool = True
    changed_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class EmployerEvent(SQLModel, table=True):
    """One event in one employer's feed. The feed is ordered by (txid, id): `txid` is the
    writing transaction's id, so readers can stop at the oldest transaction still running
    and never skip a row that commits later with a smaller id (feed.py)."""

    __tablename__ = "employer_events"
    __table_args__ = (sa.Index("ix_employer_events_feed", "employer_id", "txid", "id"),
                      sa.Index("ix_employer_events_time", "employer_id", "created_at"))
    id: int | None = Field(default=None, primary_key=True)
    txid: int | None = Field(default=None, sa_column=sa.Column(
        sa.BigInteger, nullable=False,
        server_default=sa.text("(pg_current_xact_id()::text::bigint)")))
    event_id: uuid.UUID = Field(unique=True)
    employer_id: str
    credential_id: uuid.UUID = Field(index=True)
    type: str
    body: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    first_fetched_at: datetime | None = Field(default=None, sa_type=TZ)


class WebhookDelivery(SQLModel, table=True):
    """A state machine per (event, endpoint): pending → delivered | failed (dead-lettered)
    | cancelled (no longer visible to the employer, or subscription deleted)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      sa.Index("ix_webhook_deliveries_audit", "employer_id", "created_at"))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    subscription_id: uuid.UUID = Field(index=True)
    employer_id: str
    credential_id: uuid.UUID = Field(index=True)
    event_id: uuid.UUID
    event_type: str
    webhook_id: str  # the same across retries and replays, so receivers can dedupe
    body: bytes = Field(sa_type=sa.LargeBinary)
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    last_status_code: int | None = None
    last_error: str | None = None
    replay_of: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    finished_at: datetime | None = Field(default=None, sa_type=TZ)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: uuid.UUID = Field(index=True)
    attempt: int
    at: datetime = Field(sa_type=TZ)
    status_code: int | None = None
    error: str | None = None


class RateBucket(SQLModel, table=True):
    __tablename__ = "employer_rate_buckets"
    employer_id: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)  # webhook | feed
    tokens: float
    updated_at: datetime = Field(sa_type=TZ)


EMPLOYER_TABLES: list[sa.Table] = [
    table_of(t) for t in (Employer, EmployerApiKey, Subscription, CredentialView, Exposure,
                          EmployerEvent, WebhookDelivery, WebhookAttempt, RateBucket)
]
