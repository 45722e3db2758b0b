"""The audit log: what was refused or changed, by whom, and why.

assessment's own records are written to the table and to the outbox in the transaction of
the refusal or change; records from other services arrive on topics.AUDIT and are stored
once (the audit id is the key); refusals inside the Kafka broker arrive on
topics.KAFKA_REFUSALS and are attributed (domain.refusal_entry). Secrets never reach it:
API keys are named by key id only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_assessment.audit.domain import PrincipalState, refusal_entry
from microcred_assessment.audit.models import AuditEntry
from microcred_shared import outbox
from microcred_shared.audit import Channel, audit_event, audit_record
from microcred_shared.consumer import Incoming
from microcred_shared.contract.events_providers import AuditRecorded, BrokerRefusalObserved
from microcred_shared.db import table_of

SERVICE = "assessment"


async def store(conn: AsyncConnection, events: list[AuditRecorded]) -> None:
    if events:
        await conn.execute(pg_insert(table_of(AuditEntry)).values(
            [e.model_dump(mode="python") for e in events]).on_conflict_do_nothing())


async def record(conn: AsyncConnection, *, channel: Channel, actor: str,
                 provider_id: str | None, action: str, reason: str,
                 outcome: str = "refused", details: dict[str, str] | None = None,
                 traceparent: str | None = None) -> AuditRecorded:
    event = audit_event(SERVICE, channel=channel, actor=actor, provider_id=provider_id,
                        action=action, reason=reason, outcome=outcome,  # type: ignore[arg-type]
                        details=details)
    await store(conn, [event])
    await outbox.write(conn, [audit_record(event, traceparent=traceparent)])
    return event


async def record_all(conn: AsyncConnection, entries: list[dict[str, Any]],
                     traceparent: str | None = None) -> None:
    """Several refusals at once (a batch request's): `record`'s fields per entry."""
    events = [audit_event(SERVICE, **e) for e in entries]
    await store(conn, events)
    await outbox.write(conn, [audit_record(e, traceparent=traceparent) for e in events])


async def record_now(engine: AsyncEngine, **fields: Any) -> AuditRecorded:
    """For an HTTP refusal: the request fails, but its audit record must commit."""
    async with engine.begin() as conn:
        return await record(conn, **fields)


async def on_audit(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    await store(conn, [i.event for i in items if isinstance(i.event, AuditRecorded)])
    return {}


# Whose principals these broker user names are: access.handlers.principals_by_username,
# passed in by main (the audit log depends on no other context).
PrincipalLookup = Callable[[AsyncConnection, set[str]], Awaitable[dict[str, PrincipalState]]]


async def on_broker_refusals(conn: AsyncConnection, items: list[Incoming], *,
                             principals: PrincipalLookup) -> dict[int, str]:
    refusals = [(i, i.event) for i in items if isinstance(i.event, BrokerRefusalObserved)]
    rows = await principals(conn, {e.user for _, e in refusals if e.user})
    events = []
    for item, refusal in refusals:
        event = refusal_entry(refusal, rows.get(refusal.user or ""))
        item.outgoing.append(audit_record(event, traceparent=item.traceparent))
        events.append(event)
    await store(conn, events)
    return {}


async def query(conn: AsyncConnection, *, provider: str | None, since: datetime | None,
                outcome: str | None, limit: int) -> list[dict[str, Any]]:
    stmt = sa.select(AuditEntry).order_by(col(AuditEntry.recorded_at).desc()).limit(limit)
    if provider:
        stmt = stmt.where(col(AuditEntry.provider_id) == provider)
    if since:
        stmt = stmt.where(col(AuditEntry.recorded_at) >= since)
    if outcome:
        stmt = stmt.where(col(AuditEntry.outcome) == outcome)
    rows = (await conn.execute(stmt)).mappings().all()
    return [{**{k: v for k, v in r.items()}, "audit_id": str(r["audit_id"]),
             "recorded_at": r["recorded_at"].isoformat()} for r in rows]
