"""Mail delivery: a database state machine per notification (pending → delivered, or
pending → retries → failed and dead-lettered), run in rounds by a background worker.

The credential mail's rows come leased already: notify's consumer inserts them leased to
this instance and hands them over once its batch commits (`Handoff`, ADR 4 wave 15), and a
round takes them as they come. Other rows are claimed, in short transactions of their own:
a claim leases them by pushing `next_attempt_at` one lease ahead (FOR UPDATE SKIP LOCKED,
so two instances never claim the same row) and commits before anything is sent. A round
claims when a commit owed a claim (status, sign-in and wallet mail), when its queue runs
low after a claim that took all it asked for, and half a second after the last claim; so a
row committed mid-round starts as soon as a sender is free. At most `connections` senders
(the SMTP pool's size) send the queued rows one by one, and each outcome is committed,
with its outbox records, before that sender sends its next mail; the outcomes that arrive
together share one transaction (a group commit). So when the database fails, only the
mails in flight at that moment (at most one per sender) can have gone out unrecorded: the
failed commit stops the round, and those rows and the round's unsent ones are retried once
their lease has passed. No mail is started after half its claim's lease, so a round that
runs long never sends a row another instance may already have claimed again (such rows are
handed back when the round ends).

A round keeps one database connection from its first claim to its last record (checking
one out of the pool per group cost a ping, the largest single item of notify's profile),
and wakes the outbox relay at most every `ANNOUNCE` while it runs and once when it ends,
not once per group."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
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
from microcred_shared.contract.cloudevents import CONTENT_TYPE, SPECVERSION, Envelope, encode
from microcred_shared.contract.events import NotificationDelivered, NotificationFailed
from microcred_shared.db import driver_of
from microcred_shared.outbox import Outgoing
from microcred_shared.stalls import GC_BUCKETS, Timings
from microcred_shared.telemetry import parent_context, traceparent_of

SOURCE = "/microcred/notify"
LEASE = timedelta(seconds=60)
# How long a group commit waits for the outcomes of the mails still being sent, so that the
# senders' outcomes are recorded together (issue 12): one statement for a round's senders
# instead of one for each mail or two. A relay slow to answer one connection holds the
# others back by at most this per mail; that mail is recorded with the next group.
GATHER = 0.02
# How often a round claims when nothing woke it (rows retried after a backoff come due on
# their own), and at most how often it wakes the outbox relay for what it recorded.
POLL = 0.5
ANNOUNCE = 0.1
log = logging.getLogger(__name__)
tracer = trace.get_tracer("microcred.notify")

# The database's clock for due times and leases: every instance reads the same one. The
# rows are picked in a materialized CTE: as `id IN (SELECT ... LIMIT)` the planner may run
# the subquery again per row, and the claim took (and locked) far more than the limit.
# One statement, its own implicit transaction, on the round's driver connection: a round
# claims again while it runs, and BEGIN, the claim and COMMIT through SQLAlchemy were three
# round trips and most of a claim's CPU (issue 12).
_CLAIM = (
    "WITH due AS MATERIALIZED (SELECT id FROM notifications WHERE status = 'pending' "
    "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $2 "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE notifications n SET next_attempt_at = now() + make_interval(secs => $1) "
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
# longer ours (its value is the fence: another claim would have moved it). A round claims
# more than once, so each row goes back with its own claim's lease.
_RELEASE = sa.text(
    "UPDATE notifications n SET next_attempt_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:leases AS timestamptz[])) AS x(id, lease) "
    "WHERE n.id = x.id AND n.status = 'pending' AND n.next_attempt_at = x.lease")


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# A claimed notification row (its columns as attributes).
Row = Any
# A row taken from a round's queue: the row, the last moment to start it, its mail (or why
# the mail cannot be built).
_Taken = tuple[Row, float, Mail | str]


class Handoff:
    """What the consumers' commits give this instance's delivery loop: rows inserted already
    leased to it (`hand`, each with the last moment to start it: half its lease), and word
    that rows due for a claim were committed (`owe_claim`, through `worker.Owed`: status,
    sign-in and wallet mail). Handed rows need no claim statement and no search: the
    credential mail, nearly all of the traffic, comes this way (ADR 4)."""

    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake
        self.rows: deque[tuple[Row, float]] = deque()
        self.claim_owed = False

    def hand(self, rows: list[Row], deadline: float) -> None:
        self.rows.extend((n, deadline) for n in rows)
        self._wake.set()

    def owe_claim(self) -> None:
        self.claim_owed = True
        self._wake.set()

    def take(self) -> list[tuple[Row, float]]:
        taken = list(self.rows)
        self.rows.clear()
        return taken


@dataclass(frozen=True)
class _Outcome:
    row: Row
    error: str | None
    traceparent: str | None


class Deliverer(RoundWorker):
    name = "mail delivery"

    def __init__(self, engine: AsyncEngine, pool: SmtpPool, *, sender: str, max_attempts: int,
                 retry_base: float, wake: asyncio.Event, on_published: Callable[[], None],
                 connections: int = 4, lease: timedelta = LEASE,
                 handoff: Handoff | None = None) -> None:
        self._engine, self._pool, self._sender = engine, pool, sender
        super().__init__(wake)
        self._max, self._base = max_attempts, retry_base
        self._on_published = on_published
        self._senders = max(1, connections)
        self._lease = lease
        self.handoff = handoff or Handoff(wake)
        self._last_claim = float("-inf")  # the loop's time of the last claim
        # Where a round's time goes (GET /metrics): each group commit's statement (its
        # WAL flush included) and each mail's SMTP exchange, as the loop waited for them.
        self.commit_seconds = Timings(GC_BUCKETS)
        self.send_seconds = Timings(GC_BUCKETS)

    async def next_round(self) -> int:
        """The worker's next round: the rows handed to it, and a claim only when one is
        owed (status, sign-in or wallet mail committed) or the half-second poll has come
        (retries come due on their own, and other instances hand rows back): not one
        after every round, nor for every batch of credential mail."""
        claim = (self.handoff.claim_owed
                 or asyncio.get_running_loop().time() >= self._last_claim + POLL)
        return await self.deliver_due(claim=claim)

    async def deliver_due(self, limit: int = 200, *, claim: bool = True) -> int:
        """One round: the rows handed to this loop and (`claim`) the due rows it claims, sent,
        and it goes on claiming while it runs (after a commit that owes mail, when its queue
        runs low after a full claim, and every half second), so rows committed mid-round
        start as soon as a sender is free. Ends when nothing is queued or being sent and the
        last claim was not full. Says how many rows it took."""
        handed = self.handoff.take()
        if not handed and not claim:
            return 0
        async with self._engine.connect() as conn:
            rnd = _Round(self, conn, limit)
            rnd.adopt(handed)
            if claim:
                await rnd.claim()
            if not rnd.taken:
                return 0
            try:
                await rnd.run()
                if rnd.broken is not None:
                    # The database failed: what is left of the round waits for the lease.
                    raise rnd.broken
                if left := rnd.unsent():
                    async with conn.begin():
                        await conn.execute(_RELEASE, {
                            "ids": [n.id for n in left],
                            "leases": [n.next_attempt_at for n in left]})
                    self.handoff.claim_owed = True  # due again at once: the next round claims
            finally:
                rnd.announce()
        return rnd.taken

    async def hand_back(self) -> None:
        """Rows handed to the loop and never taken (it stopped): due again at once, for
        another instance or this one's restart, instead of waiting for their lease."""
        left = [n for n, _ in self.handoff.take()]
        if not left:
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(_RELEASE, {"ids": [n.id for n in left],
                                              "leases": [n.next_attempt_at for n in left]})
        except Exception as exc:
            log.warning("mail delivery: %d handed rows wait for their lease: %s",
                        len(left), exc)

    async def _claim(self, conn: AsyncConnection, limit: int, driver: Any) -> list[Row]:
        """Leases up to `limit` due rows to this instance, oldest first."""
        try:
            due = await driver.fetch(_CLAIM, self._lease.total_seconds(), limit)
        except Exception as exc:
            # As SQLAlchemy would say it (`unavailable` reads it); the round's connection
            # is not handed back to the pool as if it were sound.
            await conn.invalidate()
            raise sa.exc.DBAPIError(_CLAIM, None, exc) from exc
        return sorted((SimpleNamespace(**r) for r in due), key=lambda n: n.created_at)

    def _stopped(self) -> bool:
        return self._stopping

    def _message(self, n: Row) -> Mail | str:
        """The row's mail, or why it cannot be built (that row fails, never the round,
        which would resend the round's other mails)."""
        try:
            return for_notification(n, self._sender)
        except Exception as exc:
            return _error(exc)

    async def _send(self, n: Row, mail: Mail | str, then: Mail | None
                    ) -> tuple[str | None, str | None]:
        """Sends the row's mail, with the next one's envelope staged behind it (`then`)."""
        if not outbox.recording():  # no span to record: the row's trace context goes on
            if isinstance(mail, str):
                return mail, n.traceparent
            started = time.perf_counter()
            try:
                await self._pool.send(mail, then)
                return None, n.traceparent
            except Exception as exc:
                return _error(exc), n.traceparent
            finally:
                self.send_seconds.observe(time.perf_counter() - started)
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
            # The driver's connection: the round's (`driver`), looked up once per round.
            raw = driver or await driver_of(conn)
            assert raw is not None
            try:
                await raw.execute(_DELIVERED_ANNOUNCED, now, [o.row.id for o in outcomes],
                                  *_delivered_columns(outcomes, now))
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

    def _delivered(self, n: Row, traceparent: str | None, now: datetime) -> Outgoing:
        """`outbox.event_record` of the event, its envelope made once (the record's
        `ce_time` is the delivery's time): one per mail, so its cost counts (issue 12)."""
        event = NotificationDelivered(
            notification_id=n.id, credential_id=n.credential_id, recipient=n.recipient,
            attempts=n.attempts + 1, delivered_at=now)
        envelope = Envelope(id=str(uuid.uuid4()), type=event.ce_type, source=SOURCE, time=now,
                            traceparent=traceparent)
        return Outgoing(topic=topics.NOTIFICATIONS, key=event.key(),
                        headers=envelope.headers(), payload=encode(event))

    async def _record_failure(self, conn: AsyncConnection, n: Row, error: str,
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


# The outbox's headers of a `notification.delivered` record (`outbox.pack_headers` of its
# envelope's), but for its id, time and trace context.
_HEADERS = json.dumps([["ce_specversion", SPECVERSION], ["ce_id", "\0"],
                       ["ce_type", NotificationDelivered.ce_type], ["ce_source", SOURCE],
                       ["ce_time", "\0"], ["content-type", CONTENT_TYPE]]).split('"\\u0000"')


def _delivered_columns(outcomes: list[_Outcome], now: datetime
                       ) -> tuple[list[str], list[bytes], list[str], list[bytes]]:
    """The outbox columns (`outbox.columns`) of the groups' `notification.delivered`
    records, as `Deliverer._delivered` makes them, without an envelope and a header list
    per mail: the event from the row's typed columns, unchecked; the headers from one
    template (issue 12, wave 16: the records of a group were ~15 µs a mail)."""
    when = json.dumps(now.isoformat())
    first, middle, last = _HEADERS
    headers, payloads, keys = [], [], []
    for o in outcomes:
        n = o.row
        event = NotificationDelivered.model_construct(
            notification_id=n.id, credential_id=n.credential_id, channel="email",
            recipient=n.recipient, attempts=n.attempts + 1, delivered_at=now)
        trace_header = f', ["traceparent", {json.dumps(o.traceparent)}]' if o.traceparent \
            else ""
        headers.append(f'{first}"{uuid.uuid4()}"{middle}{when}{last[:-1]}{trace_header}]')
        payloads.append(encode(event))
        keys.append(str(n.credential_id).encode())
    return [topics.NOTIFICATIONS] * len(outcomes), keys, headers, payloads


class _Round:
    """One round: a feeder that claims, senders that send, and their group commit.

    The round's queue is refilled while it runs: after a commit that owes mail (the
    worker's wake-up), after a claim that took all it asked for, and every half second, a
    claim runs as soon as the queue holds fewer rows than there are senders (rows in the
    queue are held from other instances, and their deadlines run). Each claimed row keeps
    its own deadline, half its claim's lease (read before the claim): a row whose deadline
    has passed is not sent but handed back when the round ends, so another instance never
    sends a row this one still holds. Senders (at most `connections`, never more than there
    are rows) send one mail at a time, each recorded before the next one's content goes
    out; a sender with nothing left to take ends, and the feeder starts new ones after a
    claim. Rows committed while the round runs so start as soon as a sender is free,
    instead of waiting for the round's slowest mail and the next claim (issue 12, latency
    below capacity).

    A sender waits for its outcome to be committed before it sends its next mail;
    whichever sender finds no commit running commits every outcome waiting, once the mails
    that were on their way when it started have their outcomes too (or `GATHER` has
    passed): mails started later go with the next group, so a steady flow of new mails
    does not hold a group back. The senders so move in step and a group is one statement.
    What may go out unrecorded is unchanged: at most one mail per sender (ADR 4)."""

    def __init__(self, owner: Deliverer, conn: AsyncConnection, limit: int) -> None:
        self._owner, self._conn, self._limit = owner, conn, limit
        self.todo: deque[tuple[Row, float]] = deque()  # (row, last moment to start it)
        self._late: list[Row] = []  # past their deadline: handed back at the end
        self.taken = 0  # rows claimed or handed to the round
        # More rows may be due: the last claim took all it asked for, a commit owed mail
        # while the queue was long, or the poll's time came.
        self._more = False
        self._waiting: list[tuple[_Outcome, asyncio.Future[None]]] = []
        self._committing = asyncio.Lock()  # the round's connection: one statement at a time
        self.broken: Exception | None = None
        self.published = False  # a recorded group wrote to the outbox, relay not woken yet
        self._driver: Any = None  # the round connection's asyncpg connection
        self._senders: set[asyncio.Task[None]] = set()
        self._stir = asyncio.Event()  # a sender ended or the queue ran low
        # Mails on their way whose outcome is not waiting yet, and those a gathering
        # committer waits for (the ones on their way when it started).
        self._inflight: set[int] = set()
        self._awaited: set[int] = set()
        self._tokens = 0
        self._gathered: asyncio.Future[None] | None = None

    def _going_on(self) -> bool:
        return self.broken is None and not self._owner._stopped()

    def announce(self) -> None:
        """Wakes the outbox relay if a group wrote to the outbox since it was last woken."""
        if self.published:
            self.published = False
            self._owner._on_published()

    def unsent(self) -> list[Row]:
        """The claimed rows not sent: past their deadline, or left when the round stopped."""
        return self._late + [n for n, _ in self.todo]

    def adopt(self, handed: list[tuple[Row, float]]) -> int:
        """Adds rows handed to the loop (already leased to it, each with its deadline)."""
        self.todo.extend(handed)
        self.taken += len(handed)
        return len(handed)

    async def claim(self) -> int:
        """Adds the due rows (up to the limit) to the queue; says how many."""
        # Read before the claim: the lease the database grants ends later than this.
        claimed_at = self._owner._last_claim = asyncio.get_running_loop().time()
        self._owner.handoff.claim_owed = False  # this claim takes what was owed
        deadline = claimed_at + self._owner._lease.total_seconds() / 2
        async with self._committing:
            if self._driver is None:
                self._driver = await driver_of(self._conn)
            due = await self._owner._claim(self._conn, self._limit, self._driver)
        self.todo.extend((n, deadline) for n in due)
        self.taken += len(due)
        self._more = len(due) >= self._limit  # took all it asked for: more may be due
        return len(due)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._owner._wake
        woken: asyncio.Task[bool] | None = None
        stirred: asyncio.Task[bool] | None = None
        announced = loop.time()
        try:
            while True:
                self._start_senders()
                if loop.time() >= announced + ANNOUNCE:
                    # A long round's events go out as they are recorded, the relay woken
                    # at most every ANNOUNCE, not once per group.
                    self.announce()
                    announced = loop.time()
                if not self._senders and (not self._going_on()
                                          or (not self.todo and not self._more)):
                    return
                if woken is None or woken.done():
                    woken = asyncio.ensure_future(wake.wait())
                if stirred is None or stirred.done():
                    self._stir.clear()
                    stirred = asyncio.ensure_future(self._stir.wait())
                await asyncio.wait((woken, stirred), timeout=POLL,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not self._going_on():
                    continue
                if wake.is_set():
                    wake.clear()
                    # Rows handed over by a commit start at once, with no claim; a wake
                    # that brought none, or a commit that owed a claim, claims.
                    if (not self.adopt(self._owner.handoff.take())
                            or self._owner.handoff.claim_owed):
                        self._more = True
                if loop.time() >= self._owner._last_claim + POLL:
                    self._more = True  # retries come due on their own
                # Claim only what the senders will soon take: rows in this queue are held
                # from other instances and their deadlines run.
                if self._more and len(self.todo) < self._owner._senders:
                    try:
                        await self.claim()
                    except Exception as exc:
                        log.warning("mail delivery: a claim failed, the round stops: %s", exc)
                        self.broken = self.broken or exc
        except BaseException:  # cancelled: so are the senders (their mails go unrecorded)
            for task in self._senders:
                task.cancel()
            raise
        finally:
            for waiting in (woken, stirred):
                if waiting is not None and not waiting.done():
                    waiting.cancel()
            if self._senders:
                await asyncio.gather(*self._senders, return_exceptions=True)

    def _start_senders(self) -> None:
        if not self._going_on():
            return
        for _ in range(min(self._owner._senders - len(self._senders), len(self.todo))):
            task = asyncio.ensure_future(self.sender())
            self._senders.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._senders.discard(task)
        if not self._senders:  # the round may be over (senders start only after claims)
            self._stir.set()

    def _take(self) -> _Taken | None:
        now = asyncio.get_running_loop().time()
        while self.todo and self._going_on():
            n, deadline = self.todo.popleft()
            if now >= deadline:
                self._late.append(n)  # half its lease is gone: handed back, not sent
                continue
            if self._more and len(self.todo) < self._owner._senders:
                self._stir.set()  # running low: the feeder claims more
            return n, deadline, self._owner._message(n)
        return None

    async def sender(self) -> None:
        """Sends one mail at a time, each recorded before the next one's content goes out;
        the next mail is taken early so that its envelope rides with this one's content."""
        loop = asyncio.get_running_loop()
        upcoming = self._take()
        try:
            while upcoming is not None and self._going_on():
                (n, deadline, mail), upcoming = upcoming, None
                if loop.time() >= deadline:  # taken in time, but it waited past its deadline
                    self._late.append(n)
                    if not isinstance(mail, str):
                        self._owner._pool.release(mail)
                    upcoming = self._take()
                    continue
                upcoming = self._take()
                then = upcoming[2] if upcoming and not isinstance(upcoming[2], str) else None
                token = self._tokens = self._tokens + 1
                self._inflight.add(token)
                try:
                    error, traceparent = await self._owner._send(n, mail, then)
                except BaseException:
                    self._sent(token)
                    raise
                try:
                    await self._settle(_Outcome(n, error, traceparent), token)
                except Exception:  # the database failed; `broken` says so, the round stops
                    return
        finally:
            if upcoming is not None:  # taken, not sent: back to the front of the queue
                if not isinstance(upcoming[2], str):
                    self._owner._pool.release(upcoming[2])
                self.todo.appendleft(upcoming[:2])

    def _sent(self, token: int) -> None:
        """A sender's mail has its outcome (waiting to be recorded) or its send ended."""
        self._inflight.discard(token)
        self._awaited.discard(token)
        if not self._awaited and self._gathered is not None and not self._gathered.done():
            self._gathered.set_result(None)

    async def _gather(self) -> None:
        """Wait until the mails on their way now have their outcomes, or `GATHER`."""
        if not self._inflight:
            return
        self._awaited = set(self._inflight)
        self._gathered = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(GATHER):
                await self._gathered
        except TimeoutError:
            pass
        finally:
            self._gathered = None
            self._awaited = set()

    async def _settle(self, outcome: _Outcome, token: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        self._sent(token)
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
                        self._driver = await driver_of(self._conn)
                    started = time.perf_counter()
                    if await self._owner._record(self._conn, [o for o, _ in group],
                                                 self._driver):
                        self.published = True
                    self._owner.commit_seconds.observe(time.perf_counter() - started)
                except Exception as exc:
                    log.warning("mail delivery: recording %d sent mails failed, the round "
                                "stops: %s", len(group), exc)
                    self.broken = self.broken or exc
                    self._stir.set()
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
