"""The webhook delivery loop: the same database state machine as the learner mail
(learner_mail.delivery.Deliverer). Due deliveries are taken FOR UPDATE SKIP LOCKED, checked
against the privacy rule once more, rate-limited per employer, sent signed (Standard
Webhooks), and their outcome recorded in the same transaction."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.employer_feed import crypto
from microcred_notify.employer_feed.domain import UNSHARED, retry_delay, should_disable
from microcred_notify.employer_feed.models import (
    Employer,
    Exposure,
    Subscription,
    WebhookAttempt,
    WebhookDelivery,
)
from microcred_notify.employer_feed.ratelimit import RateLimiter
from microcred_notify.worker import RoundWorker
from microcred_shared import netguard, outbox
from microcred_shared.contract import topics
from microcred_shared.db import table_of
from microcred_shared.outbox import Outgoing

log = logging.getLogger(__name__)
# What an endpoint answers is kept only as its status: a few KiB of body is plenty to read.
MAX_ANSWER_BYTES = 64 * 1024
SEND_SECONDS = 15.0  # the whole exchange with one endpoint
tracer = trace.get_tracer("microcred.notify.webhooks")
WD = table_of(WebhookDelivery)


# Built once: the worker polls every half second whatever the load, and building this
# statement (and its cache key) each time was most of an idle poll's CPU (issue 12).
_DUE = (sa.select(
    *WD.c, col(Subscription.webhook_url), col(Subscription.secret_encrypted),
    col(Subscription.secret_nonce), col(Exposure.visible),
).join(Subscription, col(Subscription.id) == WD.c.subscription_id)
    .join(Employer, col(Employer.id) == WD.c.employer_id)
    .outerjoin(Exposure, sa.and_(col(Exposure.employer_id) == WD.c.employer_id,
                                 col(Exposure.credential_id) == WD.c.credential_id))
    .where(WD.c.status == "pending", WD.c.next_attempt_at <= sa.func.now(),
           col(Subscription.status) == "active", col(Employer.status) == "approved")
    .order_by(WD.c.next_attempt_at).limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(of=WD, skip_locked=True))


@dataclass
class Tally:
    """What one round did to one endpoint, applied once per endpoint in id order."""

    delivered: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0  # failed, to be retried
    gone: bool = False
    disabled: bool = False  # this round disabled the endpoint


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    retry_base: float
    disable_after: int


class WebhookWorker(RoundWorker):
    name = "webhook delivery"

    def __init__(self, engine: AsyncEngine, *, box: crypto.SecretBox,
                 limiter: RateLimiter, policy: Policy, wake: asyncio.Event,
                 on_published: Callable[[], None],
                 destinations: netguard.Policy = netguard.STRICT) -> None:
        super().__init__(wake)
        self._engine, self._box, self._limiter, self._policy = engine, box, limiter, policy
        self._on_published = on_published
        # Endpoint URLs are the employers' choice: never an address inside our networks,
        # checked when each connection opens (the registration check cannot see later DNS
        # answers). Redirects are not followed, as Standard Webhooks senders do: a 3xx fails.
        self._client = netguard.guarded_client(destinations,
                                               timeout=httpx.Timeout(10.0, connect=3.0))
        self.endpoints_disabled = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def deliver_due(self, limit: int = 200) -> int:
        async with self._engine.begin() as conn:
            due = (await conn.execute(_DUE, {"limit": limit})).all()
            if not due:
                return 0
            now = datetime.now(UTC)
            # The privacy rule is checked again at send time: retries and replays of a
            # credential the learner has since unshared are cancelled, not sent.
            hidden = [d for d in due if d.event_type != UNSHARED and not d.visible]
            if hidden:
                await conn.execute(sa.update(WD).where(WD.c.id.in_([d.id for d in hidden]))
                                   .values(status="cancelled", finished_at=now,
                                           last_error="no longer visible to this employer"))
            sendable = await self._within_rate(
                conn, [d for d in due if d.event_type == UNSHARED or d.visible], now)
            outcomes = await asyncio.gather(*(self._send(d) for d in sendable))
            now = datetime.now(UTC)
            tallies: dict[object, Tally] = {}
            records: list[Outgoing] = []
            for d, (code, error) in zip(sendable, outcomes, strict=True):
                tally = tallies.setdefault(d.subscription_id, Tally())
                records += await self._record(conn, d, code, error, now, tally)
            for sub_id in sorted(tallies, key=str):
                await self._apply_tally(conn, sub_id, tallies[sub_id], now)
            await outbox.write(conn, records)
        self._count(tallies.values())
        if records:
            self._on_published()
        return len(due)

    def _count(self, tallies: Iterable[Tally]) -> None:
        """After the commit: a round rolled back recorded nothing, so it counts nothing."""
        for t in tallies:
            self.counts.delivered += t.delivered
            self.counts.attempts_failed += t.failed_attempts
            self.counts.dead_lettered += t.dead_lettered
            self.endpoints_disabled += t.disabled

    async def _within_rate(self, conn: AsyncConnection, due: list, now: datetime) -> list:
        """Sends an employer's bucket allows now; the others wait, no attempt counted."""
        by_employer: dict[str, list] = {}
        for d in due:
            by_employer.setdefault(d.employer_id, []).append(d)
        sendable = []
        for employer_id, rows in by_employer.items():
            grant = await self._limiter.take(employer_id, "webhook", len(rows))
            sendable += rows[:grant.granted]
            later = [d.id for d in rows[grant.granted:]]
            if later:
                await conn.execute(sa.update(WD).where(WD.c.id.in_(later)).values(
                    next_attempt_at=now + timedelta(seconds=max(grant.retry_after, 0.05))))
        return sendable

    async def _send(self, d: sa.Row) -> tuple[int | None, str | None]:
        with tracer.start_as_current_span("notify send webhook", kind=trace.SpanKind.CLIENT,
                                          attributes={"webhook.id": d.webhook_id}) as span:
            try:
                secret = self._box.open(d.subscription_id, d.secret_encrypted, d.secret_nonce)
                headers = crypto.headers(secret, d.webhook_id, int(time.time()), d.body)
                response = await netguard.fetch(
                    self._client, "POST", d.webhook_url, content=d.body, headers=headers,
                    max_bytes=MAX_ANSWER_BYTES, total_seconds=SEND_SECONDS, truncate=True)
            except Exception as exc:  # network, timeout, refused address, undecryptable secret
                span.record_exception(exc)
                return None, f"{type(exc).__name__}: {exc}"[:500]
            span.set_attribute("http.response.status_code", response.status_code)
            if 200 <= response.status_code < 300:
                return response.status_code, None
            return response.status_code, f"HTTP {response.status_code}"

    async def _record(self, conn: AsyncConnection, d: sa.Row, code: int | None,
                      error: str | None, now: datetime, tally: Tally) -> list[Outgoing]:
        attempts = d.attempts + 1
        await conn.execute(sa.insert(WebhookAttempt).values(
            delivery_id=d.id, attempt=attempts, at=now, status_code=code, error=error))
        where = WD.c.id == d.id
        if error is None:
            tally.delivered += 1
            await conn.execute(sa.update(WD).where(where).values(
                status="delivered", attempts=attempts, finished_at=now, last_status_code=code,
                last_error=None))
            return []
        tally.gone |= code == 410
        if attempts < self._policy.max_attempts and code != 410:
            tally.failed_attempts += 1
            await conn.execute(sa.update(WD).where(where).values(
                attempts=attempts, last_status_code=code, last_error=error,
                next_attempt_at=now + retry_delay(attempts, self._policy.retry_base)))
            return []
        tally.dead_lettered += 1
        await conn.execute(sa.update(WD).where(where).values(
            status="failed", attempts=attempts, finished_at=now, last_status_code=code,
            last_error=error))
        reason = f"webhook undeliverable after {attempts} attempts: {error}"
        return [Outgoing(topic=topics.dlq(topics.NOTIFICATIONS),
                         key=str(d.credential_id).encode(),
                         headers=[("dlq_id", f"delivery:{d.id}".encode()),
                                  ("dlq_reason", reason.encode()), ("dlq_service", b"notify"),
                                  ("dlq_topic", topics.NOTIFICATIONS.encode()),
                                  ("webhook-id", d.webhook_id.encode()),
                                  ("microcred_employer", d.employer_id.encode()),
                                  ("microcred_delivery", str(d.id).encode())],
                         payload=d.body)]

    async def _apply_tally(self, conn: AsyncConnection, sub_id: object, tally: Tally,
                           now: datetime) -> None:
        s = table_of(Subscription)
        values: dict[str, Any]
        if tally.delivered and not tally.dead_lettered:
            values = {"consecutive_failures": 0, "failing_since": None}
        else:
            values = {"consecutive_failures": s.c.consecutive_failures + tally.dead_lettered,
                      "failing_since": sa.func.coalesce(s.c.failing_since, now)}
        row = (await conn.execute(sa.update(s).where(s.c.id == sub_id).values(
            **values, updated_at=now).returning(s.c.consecutive_failures, s.c.failing_since,
                                                s.c.status))).one()
        reason = None
        if tally.gone:
            reason = "the endpoint answered 410 Gone"
        elif row.consecutive_failures >= self._policy.disable_after:
            reason = f"{row.consecutive_failures} deliveries in a row dead-lettered"
        elif should_disable(row.consecutive_failures, self._policy.disable_after,
                            row.failing_since, now):
            reason = f"no successful delivery since {row.failing_since.isoformat()}"
        if reason and row.status == "active":
            log.warning("webhook endpoint of subscription %s disabled: %s", sub_id, reason)
            tally.disabled = True
            await conn.execute(sa.update(s).where(s.c.id == sub_id).values(
                status="disabled", disabled_reason=reason, updated_at=now))
