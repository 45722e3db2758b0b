"""Mail delivery: a database state machine per notification (pending → delivered, or
pending → retries → failed and dead-lettered), run in rounds by a background worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.learner_mail.domain import backoff, for_notification
from microcred_notify.learner_mail.models import Notification
from microcred_notify.learner_mail.smtp import SmtpPool
from microcred_notify.worker import RoundWorker
from microcred_shared import outbox
from microcred_shared.contract import topics
from microcred_shared.contract.events import NotificationDelivered, NotificationFailed
from microcred_shared.outbox import Outgoing
from microcred_shared.telemetry import parent_context, traceparent_of

SOURCE = "/microcred/notify"
log = logging.getLogger(__name__)
tracer = trace.get_tracer("microcred.notify")

_DELIVERED = sa.text(
    "UPDATE notifications SET status = 'delivered', attempts = attempts + 1, "
    "delivered_at = :now, last_error = NULL WHERE id = ANY(CAST(:ids AS uuid[]))")


class Deliverer(RoundWorker):
    name = "mail delivery"

    def __init__(self, engine: AsyncEngine, pool: SmtpPool, *, sender: str, max_attempts: int,
                 retry_base: float, wake: asyncio.Event, on_published: Callable[[], None]) -> None:
        self._engine, self._pool, self._sender = engine, pool, sender
        super().__init__(wake)
        self._max, self._base = max_attempts, retry_base
        self._on_published = on_published
        self.delivered = 0
        self.failed = 0

    async def deliver_due(self, limit: int = 200) -> int:
        async with self._engine.begin() as conn:
            # Rows stay locked while we send, so a second instance never sends them too.
            due = (await conn.execute(sa.select(Notification).where(
                col(Notification.status) == "pending",
                col(Notification.next_attempt_at) <= datetime.now(UTC),
            ).order_by(col(Notification.next_attempt_at)).limit(limit)
                .with_for_update(skip_locked=True))).all()
            if not due:
                return 0
            outcomes = await asyncio.gather(*(self._send(n) for n in due))
            records: list[Outgoing] = []
            now = datetime.now(UTC)
            delivered = []
            for n, (error, traceparent) in zip(due, outcomes, strict=True):
                if error is None:
                    delivered.append(n)
                    records.append(self._delivered(n, traceparent, now))
                else:
                    records.extend(await self._record_failure(conn, n, error, traceparent, now))
            if delivered:
                # One statement for the whole round: per-row updates were a third of
                # notify's database time in the e2e profile.
                await conn.execute(_DELIVERED, {"ids": [n.id for n in delivered], "now": now})
                self.delivered += len(delivered)
            await outbox.write(conn, records)
        self._on_published()
        return len(due)

    async def _send(self, n: sa.Row) -> tuple[str | None, str | None]:
        if not outbox.recording():  # no span to record: the row's trace context goes on
            try:
                await self._pool.send(for_notification(n, self._sender))
                return None, n.traceparent
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"[:500], n.traceparent
        with tracer.start_as_current_span("notify send email", context=parent_context(
                n.traceparent), kind=trace.SpanKind.CLIENT,
                attributes={"messaging.message.id": n.message_id}) as span:
            traceparent = traceparent_of() or n.traceparent
            try:
                # Inside the try: a message that cannot be built fails its own row only,
                # never the round (which would resend the round's other mails).
                msg = for_notification(n, self._sender)
                await self._pool.send(msg)
                return None, traceparent
            except Exception as exc:
                span.record_exception(exc)
                return f"{type(exc).__name__}: {exc}"[:500], traceparent

    def _delivered(self, n: sa.Row, traceparent: str | None, now: datetime) -> Outgoing:
        return outbox.event_record(topics.NOTIFICATIONS, NotificationDelivered(
            notification_id=n.id, credential_id=n.credential_id, recipient=n.recipient,
            attempts=n.attempts + 1, delivered_at=now), SOURCE, traceparent=traceparent)

    async def _record_failure(self, conn: AsyncConnection, n: sa.Row, error: str,
                              traceparent: str | None, now: datetime) -> list[Outgoing]:
        attempts = n.attempts + 1
        where = col(Notification.id) == n.id
        if attempts < self._max:
            await conn.execute(sa.update(Notification).where(where).values(
                attempts=attempts, last_error=error,
                next_attempt_at=now + backoff(attempts, self._base)))
            return []
        await conn.execute(sa.update(Notification).where(where).values(
            status="failed", attempts=attempts, last_error=error))
        self.failed += 1
        reason = f"undeliverable after {attempts} attempts: {error}"
        letter = Outgoing(topic=topics.dlq(topics.NOTIFICATIONS), key=str(n.credential_id).encode(),
                          headers=[("dlq_id", f"notification:{n.id}".encode()),
                                   ("dlq_reason", reason.encode()), ("dlq_service", b"notify"),
                                   ("dlq_topic", n.source_topic.encode())],
                          payload=n.source_payload)
        return [letter, outbox.event_record(topics.NOTIFICATIONS, NotificationFailed(
            notification_id=n.id, credential_id=n.credential_id, recipient=n.recipient,
            attempts=attempts, reason=reason, failed_at=now), SOURCE, traceparent=traceparent)]
