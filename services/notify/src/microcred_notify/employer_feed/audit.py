"""Operator use cases: what was delivered to whom (webhook deliveries with every attempt,
and feed entries with when they were first fetched), and replays. The caller wakes the
webhook worker after a replay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.employer_feed.models import EmployerEvent, Subscription, WebhookAttempt
from microcred_notify.employer_feed.webhooks import WD
from microcred_shared.db import table_of
from microcred_shared.problems import Problem


class ReplayRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employer_id: str
    since: datetime
    until: datetime
    statuses: list[str] = Field(default=["failed"], description="outcomes to send again")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def delivery(row: Any, attempts: list[Any]) -> dict[str, Any]:
    return {"id": str(row.id), "channel": "webhook", "employer_id": row.employer_id,
            "subscription_id": str(row.subscription_id), "credential_id": str(row.credential_id),
            "event_id": str(row.event_id), "event_type": row.event_type,
            "webhook_id": row.webhook_id, "status": row.status, "attempts": row.attempts,
            "last_status_code": row.last_status_code, "last_error": row.last_error,
            "replay_of": str(row.replay_of) if row.replay_of else None,
            "created_at": _iso(row.created_at), "finished_at": _iso(row.finished_at),
            "attempt_log": [{"attempt": a.attempt, "at": _iso(a.at), "status_code": a.status_code,
                             "error": a.error} for a in attempts]}


async def replay(conn: AsyncConnection, rows: Sequence[Any]) -> list[uuid.UUID]:
    """A replay is a new delivery of the same body under the same webhook-id (receivers
    dedupe on it); the privacy rule is applied again when it is sent."""
    now = datetime.now(UTC)
    new = [{"id": uuid.uuid4(), "subscription_id": r.subscription_id,
            "employer_id": r.employer_id, "credential_id": r.credential_id,
            "event_id": r.event_id, "event_type": r.event_type, "webhook_id": r.webhook_id,
            "body": r.body, "status": "pending", "attempts": 0, "next_attempt_at": now,
            "replay_of": r.id, "created_at": now} for r in rows]
    if new:
        await conn.execute(sa.insert(WD), new)
    return [n["id"] for n in new]


async def deliveries(engine: AsyncEngine, employer: str | None, credential: uuid.UUID | None,
                     limit: int) -> dict[str, Any]:
    wd, ev = WD.c, table_of(EmployerEvent).c
    q_wd, q_ev = sa.select(WD), sa.select(ev.event_id, ev.type, ev.employer_id,
                                          ev.credential_id, ev.created_at, ev.first_fetched_at)
    if employer:
        q_wd, q_ev = q_wd.where(wd.employer_id == employer), q_ev.where(
            ev.employer_id == employer)
    if credential:
        q_wd, q_ev = q_wd.where(wd.credential_id == credential), q_ev.where(
            ev.credential_id == credential)
    async with engine.connect() as conn:
        rows = (await conn.execute(q_wd.order_by(wd.created_at).limit(limit))).all()
        events = (await conn.execute(q_ev.order_by(ev.created_at).limit(limit))).all()
        attempts = (await conn.execute(sa.select(WebhookAttempt).where(
            col(WebhookAttempt.delivery_id).in_([r.id for r in rows]))
            .order_by(col(WebhookAttempt.attempt)))).all() if rows else []
    by_delivery: dict[uuid.UUID, list[Any]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(a)
    return {"deliveries": [delivery(r, by_delivery.get(r.id, [])) for r in rows],
            "feed": [feed_entry(e) for e in events]}


def feed_entry(e: Any) -> dict[str, Any]:
    return {"channel": "feed", "event_id": str(e.event_id), "event_type": e.type,
            "employer_id": e.employer_id, "credential_id": str(e.credential_id),
            "created_at": _iso(e.created_at), "first_fetched_at": _iso(e.first_fetched_at)}


async def replay_one(engine: AsyncEngine, delivery_id: uuid.UUID) -> uuid.UUID:
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(WD, col(Subscription.status).label("sub_status"))
                                  .join(Subscription, col(Subscription.id) == WD.c.subscription_id)
                                  .where(WD.c.id == delivery_id))).first()
        if row is None:
            raise Problem(404, "Not found", f"no delivery {delivery_id}", kind="not-found")
        if row.sub_status == "deleted":
            raise Problem(409, "Subscription deleted", "the employer deleted this "
                          "subscription; nothing can be sent to it", kind="conflict")
        (new_id,) = await replay(conn, [row])
    return new_id


async def replay_range(engine: AsyncEngine, body: ReplayRange) -> list[uuid.UUID]:
    """Send again an employer's deliveries created in [since, until) whose latest outcome
    is one of `statuses` (never replayed since), unless their subscription was deleted."""
    later = sa.alias(WD, "later")
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.select(WD)
                .join(Subscription, col(Subscription.id) == WD.c.subscription_id).where(
            WD.c.employer_id == body.employer_id, WD.c.created_at >= body.since,
            WD.c.created_at < body.until, WD.c.status.in_(body.statuses),
            col(Subscription.status) != "deleted",
            ~sa.exists().where(later.c.replay_of == WD.c.id)))).all()
        return await replay(conn, rows)
