"""Mail delivery: a database state machine per notification (pending → delivered, or
pending → retries → failed and dead-lettered), run in rounds by a background worker.

A round first claims its due rows in a short transaction of its own: it leases them by
pushing `next_attempt_at` one lease ahead (FOR UPDATE SKIP LOCKED, so two instances never
claim the same row) and commits before anything is sent. Then at most `connections`
senders (the SMTP pool's size) send the rows one by one, and each outcome is committed,
with its outbox records, before that sender sends its next mail; the outcomes that arrive
together share one transaction (a group commit). So when the database fails, only the mails
in flight at that moment (at most one per sender) can have gone out unrecorded: the failed
commit stops the round, and those rows and the round's unsent ones are retried once the
lease has passed. A sender starts no mail after half the lease, so a round that runs long
never sends a row another instance may already have claimed again.

A round keeps one database connection from its claim to its last record (checking one out
of the pool per group cost a ping, the largest single item of notify's profile), and wakes
the outbox relay once, when it ends: the `notification.*` events of a round go out in one
drain instead of one per group (the relay's own poll picks them up within half a second
during a long round)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.learner_mail.domain import Mail, backoff, for_notification
from microcred_notify.learner_mail.models import Notification
from microcred_notify.learner_mail.smtp import SmtpPool
from microcred_notify.worker import RoundWorker
from microcred_shared import outbox
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import Envelope, encode
from microcred_shared.contract.events import NotificationDelivered, NotificationFailed
from microcred_shared.outbox import Outgoing
from microcred_shared.telemetry import parent_context, traceparent_of

SOURCE = "/microcred/notify"
LEASE = timedelta(seconds=60)
# How long a group commit waits for the outcomes of the mails still being sent, so that the
# senders' outcomes are recorded together (issue 12): one statement for a round's senders
# instead of one for each mail or two. A relay slow to answer one connection holds the
# others back by at most this per mail; that mail is recorded with the next group.
GATHER = 0.02
log = logging.getLogger(__name__)
tracer = trace.get_tracer("microcred.notify")

# The database's clock for due times and leases: every instance reads the same one. The
# rows are picked in a materialized CTE: as `id IN (SELECT ... LIMIT)` the planner may run
# the subquery again per row, and the claim took (and locked) far more than the limit.
_CLAIM = sa.text(
    "WITH due AS MATERIALIZED (SELECT id FROM notifications WHERE status = 'pending' "
    "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT :limit "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE notifications n SET next_attempt_at = now() + make_interval(secs => :lease) "
    "FROM due WHERE n.id = due.id RETURNING n.*")
_DELIVERED = sa.text(
    "UPDATE notifications SET status = 'delivered', attempts = attempts + 1, "
    "delivered_at = :now, last_error = NULL WHERE id = ANY(CAST(:ids AS uuid[]))")
# The common outcome, all mails of a group delivered: the rows and their announcements in
# one statement, i.e. one implicit transaction and one round trip (BEGIN, UPDATE, outbox
# INSERT and COMMIT were four, per group of at most `connections` mails).
_DELIVERED_ANNOUNCED = (
    "WITH done AS (UPDATE notifications SET status = 'delivered', attempts = attempts + 1, "
    "delivered_at = $1, last_error = NULL WHERE id = ANY($2::uuid[])) "
    + outbox.INSERT_ARRAYS.format(topics="$3", keys="$4", headers="$5", payloads="$6"))
# Rows a round claimed but did not send are due again at once, unless the lease is no
# longer ours (its value is the round's fence: another claim would have moved it).
_RELEASE = sa.text(
    "UPDATE notifications SET next_attempt_at = now() WHERE id = ANY(CAST(:ids AS uuid[])) "
    "AND status = 'pending' AND next_attempt_at = :lease")


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


@dataclass(frozen=True)
class _Outcome:
    row: sa.Row
    error: str | None
    traceparent: str | None


class Deliverer(RoundWorker):
    name = "mail delivery"

    def __init__(self, engine: AsyncEngine, pool: SmtpPool, *, sender: str, max_attempts: int,
                 retry_base: float, wake: asyncio.Event, on_published: Callable[[], None],
                 connections: int = 4, lease: timedelta = LEASE) -> None:
        self._engine, self._pool, self._sender = engine, pool, sender
        super().__init__(wake)
        self._max, self._base = max_attempts, retry_base
        self._on_published = on_published
        self._senders = max(1, connections)
        self._lease = lease

    async def deliver_due(self, limit: int = 200) -> int:
        loop = asyncio.get_running_loop()
        # Read before the claim: the lease the database grants ends later than this.
        deadline = loop.time() + self._lease.total_seconds() / 2
        async with self._engine.connect() as conn:
            async with conn.begin():
                due = (await conn.execute(_CLAIM, {"lease": self._lease.total_seconds(),
                                                   "limit": limit})).all()
            if not due:
                return 0
            rnd = _Round(self, conn, deque(sorted(due, key=lambda n: n.created_at)), deadline)
            try:
                await asyncio.gather(*(rnd.sender()
                                       for _ in range(min(self._senders, len(due)))))
                if rnd.broken is not None:
                    # The database failed: what is left of the round waits for the lease.
                    raise rnd.broken
                if rnd.todo:
                    async with conn.begin():
                        await conn.execute(_RELEASE, {"ids": [n.id for n in rnd.todo],
                                                      "lease": due[0].next_attempt_at})
            finally:
                if rnd.published:
                    self._on_published()
        return len(due)

    def _stopped(self) -> bool:
        return self._stopping

    def _message(self, n: sa.Row) -> Mail | str:
        """The row's mail, or why it cannot be built (that row fails, never the round,
        which would resend the round's other mails)."""
        try:
            return for_notification(n, self._sender)
        except Exception as exc:
            return _error(exc)

    async def _send(self, n: sa.Row, mail: Mail | str, then: Mail | None
                    ) -> tuple[str | None, str | None]:
        """Sends the row's mail, with the next one's envelope staged behind it (`then`)."""
        if not outbox.recording():  # no span to record: the row's trace context goes on
            if isinstance(mail, str):
                return mail, n.traceparent
            try:
                await self._pool.send(mail, then)
                return None, n.traceparent
            except Exception as exc:
                return _error(exc), n.traceparent
        with tracer.start_as_current_span("notify send email", context=parent_context(
                n.traceparent), kind=trace.SpanKind.CLIENT,
                attributes={"messaging.message.id": n.message_id}) as span:
            traceparent = traceparent_of() or n.traceparent
            if isinstance(mail, str):
                return mail, traceparent
            try:
                await self._pool.send(mail, then)
                return None, traceparent
            except Exception as exc:
                span.record_exception(exc)
                return _error(exc), traceparent

    async def _record(self, conn: AsyncConnection, outcomes: list[_Outcome],
                      driver: Any = None) -> bool:
        """One transaction for a group of outcomes, on the round's connection: one statement
        for all the delivered rows (per-row updates were a third of notify's database time
        in the e2e profile), one per failed row, one for the outbox. Says whether it wrote
        to the outbox (the round wakes the relay once, at its end)."""
        now = datetime.now(UTC)
        records: list[Outgoing] = []
        delivered = [o for o in outcomes if o.error is None]
        if len(delivered) == len(outcomes):
            records = [self._delivered(o.row, o.traceparent, now) for o in outcomes]
            # The driver's connection: the round's (`driver`), looked up once per round.
            raw = driver or (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            try:
                await raw.execute(_DELIVERED_ANNOUNCED, now, [o.row.id for o in outcomes],
                                  *outbox.columns(records))
            except Exception as exc:
                # As SQLAlchemy would say it (`unavailable` reads it), and the round's
                # connection is not handed back to the pool as if it were sound.
                await conn.invalidate()
                raise sa.exc.DBAPIError(_DELIVERED_ANNOUNCED, None, exc) from exc
            self.counts.delivered += len(delivered)
            return True
        async with conn.begin():
            for o in outcomes:
                if o.error is None:
                    records.append(self._delivered(o.row, o.traceparent, now))
                else:
                    records.extend(await self._record_failure(
                        conn, o.row, o.error, o.traceparent, now))
            if delivered:
                await conn.execute(_DELIVERED, {"ids": [o.row.id for o in delivered],
                                                "now": now})
            await outbox.write(conn, records)
        given_up = sum(o.error is not None and o.row.attempts + 1 >= self._max
                       for o in outcomes)
        self.counts.delivered += len(delivered)
        self.counts.dead_lettered += given_up
        self.counts.attempts_failed += len(outcomes) - len(delivered) - given_up
        return bool(records)

    def _delivered(self, n: sa.Row, traceparent: str | None, now: datetime) -> Outgoing:
        """`outbox.event_record` of the event, its envelope made once (the record's
        `ce_time` is the delivery's time): one per mail, so its cost counts (issue 12)."""
        event = NotificationDelivered(
            notification_id=n.id, credential_id=n.credential_id, recipient=n.recipient,
            attempts=n.attempts + 1, delivered_at=now)
        envelope = Envelope(id=str(uuid.uuid4()), type=event.ce_type, source=SOURCE, time=now,
                            traceparent=traceparent)
        return Outgoing(topic=topics.NOTIFICATIONS, key=event.key(),
                        headers=envelope.headers(), payload=encode(event))

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
        reason = f"undeliverable after {attempts} attempts: {error}"
        letter = Outgoing(topic=topics.dlq(topics.NOTIFICATIONS), key=str(n.credential_id).encode(),
                          headers=[("dlq_id", f"notification:{n.id}".encode()),
                                   ("dlq_reason", reason.encode()), ("dlq_service", b"notify"),
                                   ("dlq_topic", n.source_topic.encode())],
                          payload=n.source_payload)
        return [letter, outbox.event_record(topics.NOTIFICATIONS, NotificationFailed(
            notification_id=n.id, credential_id=n.credential_id, recipient=n.recipient,
            attempts=attempts, reason=reason, failed_at=now), SOURCE, traceparent=traceparent)]


class _Round:
    """One round's senders and their group commit. A sender waits for its outcome to be
    committed before it sends its next mail; whichever sender finds no commit running
    commits every outcome waiting, once the mails still being sent have their outcomes
    too (or `GATHER` has passed). The senders so move in step: their mails go out
    together and are recorded by one statement (groups averaged 1.8 mails of 4 senders,
    i.e. one statement, one commit and one WAL flush per 1.8 mails: the largest item of
    notify's database CPU in the e2e benchmark, issue 12). What may go out unrecorded is
    unchanged: at most one mail per sender (ADR 4)."""

    def __init__(self, owner: Deliverer, conn: AsyncConnection, todo: deque[sa.Row],
                 deadline: float) -> None:
        self._owner, self._conn, self.todo, self._deadline = owner, conn, todo, deadline
        self._waiting: list[tuple[_Outcome, asyncio.Future[None]]] = []
        self._committing = asyncio.Lock()
        self.broken: Exception | None = None
        self.published = False  # a recorded group wrote to the outbox
        self._driver: Any = None  # the round connection's asyncpg connection
        self._sending = 0  # senders with a mail on its way whose outcome is not waiting yet
        self._gathered: asyncio.Future[None] | None = None  # the committer waits on it

    def _going_on(self) -> bool:
        return (self.broken is None and not self._owner._stopped()
                and asyncio.get_running_loop().time() < self._deadline)

    def _take(self) -> tuple[sa.Row, Mail | str] | None:
        if not self.todo or not self._going_on():
            return None
        n = self.todo.popleft()
        return n, self._owner._message(n)

    async def sender(self) -> None:
        """Sends one mail at a time, each recorded before the next one's content goes out;
        the next mail is taken early so that its envelope rides with this one's content."""
        upcoming = self._take()
        try:
            while upcoming is not None and self._going_on():
                (n, mail), upcoming = upcoming, self._take()
                then = upcoming[1] if upcoming and not isinstance(upcoming[1], str) else None
                self._sending += 1
                try:
                    error, traceparent = await self._owner._send(n, mail, then)
                except BaseException:
                    self._sent()
                    raise
                try:
                    await self._settle(_Outcome(n, error, traceparent))
                except Exception:  # the database failed; `broken` says so, the round stops
                    return
        finally:
            if upcoming is not None:  # taken, not sent: back to the round's rest
                if not isinstance(upcoming[1], str):
                    self._owner._pool.release(upcoming[1])
                self.todo.appendleft(upcoming[0])

    def _sent(self) -> None:
        """A sender's mail has its outcome (waiting to be recorded) or its send ended."""
        self._sending -= 1
        if not self._sending and self._gathered is not None and not self._gathered.done():
            self._gathered.set_result(None)

    async def _gather(self) -> None:
        """Wait until no mail is on its way without its outcome waiting, or `GATHER`."""
        if not self._sending:
            return
        self._gathered = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(GATHER):
                await self._gathered
        except TimeoutError:
            pass
        finally:
            self._gathered = None

    async def _settle(self, outcome: _Outcome) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        self._sent()
        async with self._committing:
            if not done.done() and self.broken is None:
                await self._gather()
            if not done.done() and self.broken is not None:
                # The round's connection failed: these wait for the lease like the rest.
                for _, f in self._waiting:
                    f.set_exception(self.broken)
                self._waiting = []
            if not done.done():
                group, self._waiting = self._waiting, []
                try:
                    if self._driver is None:
                        self._driver = (await self._conn.get_raw_connection()
                                        ).driver_connection
                    if await self._owner._record(self._conn, [o for o, _ in group],
                                                 self._driver):
                        self.published = True
                except Exception as exc:
                    log.warning("mail delivery: recording %d sent mails failed, the round "
                                "stops: %s", len(group), exc)
                    self.broken = self.broken or exc
                    for _, f in group:
                        f.set_exception(exc)
                except BaseException:
                    for _, f in group:
                        f.cancel()
                    raise
                else:
                    for _, f in group:
                        f.set_result(None)
        await done
