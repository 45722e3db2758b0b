"""HTTP ingest's store: the results that requests accepted, decided and written together
(group commit).

Every request whose results passed the ingest check hands them, with their decisions, to
`IngestStore.store` and waits; one task writes whatever has gathered in one statement
(atomic on its own, run in autocommit: a single round trip) — the ingest ledger (one row
per provider result id: what it said, the event id it got), the decisions (`results`, by
the statement the Kafka consumer runs: `decisions.decide_from`) and, for each result
decided for the first time, its AssessmentDecided record in the outbox — and only once it
committed answers every waiting request. So a 202 means "durably decided" (ADR 40: the
result is decided at the door, not published on topics.RESULTS to be decided by this
service's own consumer: one Kafka hop, one relay claim and one consumer batch fewer), and
a thousand requests a second cost a few dozen transactions, not a thousand (issue 12).

The ledger says, per item: `accepted` (first time over HTTP), `duplicate` (the same
result, same content, already received: counted in the decision's `submissions` as a
resubmission over Kafka is, never decided twice) or `conflict` (the same provider result
id with other content: refused, not counted; the first one stands). A result that came
over Kafka first is new to the ledger but not to `results`: counted, not decided again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_assessment.results import decisions
from microcred_shared import outbox
from microcred_shared.consumer import HOLD, give_back, sound
from microcred_shared.contract.events import AssessmentDecided, AssessmentResultSubmitted
from microcred_shared.db import SHARD_OF_KEY, driver_of, unavailable
from microcred_shared.telemetry import trace_id_of

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "duplicate", "conflict"]
# At most this many results per transaction: a flush of a whole batch request plus the
# single requests that arrived meanwhile; more wait for the next one.
MAX_ROWS = 2000
# Flushes in flight at once. Each locks its ledger rows in (provider, result id) order, so
# two of them holding the same results wait for each other, never deadlock.
FLUSHES = 4


def content_digest(result: AssessmentResultSubmitted) -> bytes:
    """What the result says, as parsed (key order and whitespace do not count)."""
    return hashlib.sha256(result.model_dump_json().encode()).digest()


@dataclass(frozen=True)
class Item:
    """A checked result and its decision, ready for the store (the decision's outbox
    record and the submission's event id and trace id are set)."""

    result: AssessmentResultSubmitted
    decision: AssessmentDecided
    record: outbox.Outgoing  # the decision's, written if it is decided for the first time
    digest: bytes
    event_id: str  # the submission's id (the ledger's and the decision row's ce_id)
    trace_id: str | None


def item(result: AssessmentResultSubmitted, decision: AssessmentDecided, *,
         traceparent: str | None) -> Item:
    """A result a provider submitted over HTTP and its decision (the request's trace)."""
    return Item(result, decision, decisions.record(decision, traceparent),
                content_digest(result), str(uuid.uuid4()), trace_id_of(traceparent))


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    event_id: str | None  # the one that counts: a duplicate's or conflict's first


@dataclass
class _Request:
    items: list[Item]
    done: asyncio.Future[list[Stored]]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


# The whole flush is one statement, run in autocommit: one round trip, no BEGIN/COMMIT (a
# statement is atomic on its own). Arrays in, one cached statement whatever the number of
# rows. The ledger says which results are new: it gets the first copy of each provider
# result of the flush, in (provider, result id) order, the lock order of every flush; `xmax
# = 0` on a row this statement inserted, an existing row is returned untouched (the no-op
# update locks it, so a concurrent flush or instance waits for us). Then every copy is
# judged against its ledger row: accepted (the first copy of a new row), duplicate (same
# digest) or conflict. Each provider result with copies that are not conflicts is decided
# by its first such copy, counting them all (`decisions.decide_from`, in the same order:
# a consumer batch deciding some of the same results waits, or is waited for, never
# deadlocks); the outbox gets the decisions of the results decided for the first time, in
# arrival order.
_FLUSH_NAMED = (
    "WITH u AS (SELECT * FROM unnest(CAST(:idx AS int[]), CAST(:pids AS text[]), "
    "CAST(:rids AS text[]), CAST(:digests AS bytea[]), CAST(:eids AS text[]), "
    "CAST(:firsts AS boolean[]), CAST(:aids AS uuid[]), CAST(:dids AS text[]), "
    "CAST(:vers AS int[]), CAST(:lkeys AS text[]), CAST(:achieved AS boolean[]), "
    "CAST(:reasons AS text[]), CAST(:trace_ids AS text[]), CAST(:dats AS timestamptz[]), "
    "CAST(:topics AS text[]), CAST(:keys AS bytea[]), CAST(:headers AS text[]), "
    "CAST(:payloads AS bytea[])) "
    "AS u(i, p, r, dg, e, f, a, d, v, l, ok, why, tr, dat, t, k, h, pl)), "
    "led AS (INSERT INTO ingested_results (provider_id, result_id, digest, event_id, "
    "received_at) SELECT p, r, dg, e, now() FROM u WHERE f ORDER BY p, r "
    "ON CONFLICT (provider_id, result_id) DO UPDATE SET provider_id = excluded.provider_id "
    "RETURNING provider_id, result_id, digest, event_id, xmax = 0 AS new), "
    "j AS (SELECT u.*, led.event_id AS ce, CASE WHEN led.new AND u.f "
    "THEN 'accepted' WHEN led.digest = u.dg THEN 'duplicate' ELSE 'conflict' END AS outcome "
    "FROM u JOIN led ON led.provider_id = u.p AND led.result_id = u.r), "
    "c AS (SELECT DISTINCT ON (p, r) *, CAST(count(*) OVER (PARTITION BY p, r) AS int) AS n "
    "FROM j WHERE outcome <> 'conflict' ORDER BY p, r, i), "
    "dec AS (" + decisions.decide_from("c") + "), "
    "o AS (INSERT INTO outbox (topic, key, headers, payload, created_at, shard) "
    "SELECT t, k, h, pl, now(), " + SHARD_OF_KEY.format(key="k") + " FROM c "
    "JOIN dec ON dec.provider_id = c.p AND dec.result_id = c.r WHERE dec.first ORDER BY i) "
    "SELECT i, outcome, ce FROM j ORDER BY i")
# Sent on the asyncpg connection itself (`db.driver_of`): no transaction is open on it, so
# the statement commits on its own, as it did in SQLAlchemy's autocommit, without
# SQLAlchemy's work per statement (ADR 37's figures: ~100 µs of client CPU a statement;
# issue 12, wave 16). Its parameters in order:
_PARAMS = ("idx", "pids", "rids", "digests", "eids", "firsts", "aids", "dids", "vers",
           "lkeys", "achieved", "reasons", "trace_ids", "dats", "topics", "keys", "headers",
           "payloads")
_FLUSH = _FLUSH_NAMED
for _n, _name in enumerate(_PARAMS, 1):
    _FLUSH = _FLUSH.replace(f"CAST(:{_name} AS", f"CAST(${_n} AS")
assert ":" not in _FLUSH.replace("::", "")


class IngestStore:
    """Group commit for HTTP ingest. `on_commit` runs after each commit (wake the relay)."""

    def __init__(self, engine: AsyncEngine, on_commit: Callable[[], None]) -> None:
        self._engine, self._on_commit = engine, on_commit
        self._queue: deque[_Request] = deque()
        self._armed = False  # a flush task was started and has not taken its requests yet
        self._stopping = False
        self._flushing: set[asyncio.Task[None]] = set()
        # Connections of finished flushes kept for the next ones (at most FLUSHES, the
        # last used last), with when each was last used; see `_connection`.
        self._kept: list[tuple[AsyncConnection, float]] = []
        self._release: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.flushes = 0
        self.stored = 0
        self.checkouts = 0  # connections taken from the pool (tests, benchmarks)

    async def store(self, items: list[Item]) -> list[Stored]:
        """Each item's outcome, once it is committed; raises what the write raised (a
        database outage: the caller answers 503 and nothing was stored)."""
        if not items:
            return []
        if self._stopping:
            raise RuntimeError("the service is stopping")
        request = _Request(items, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._kick()
        return await request.done

    def _kick(self) -> None:
        """Start a flush task unless one is already due to take the queue or FLUSHES are
        in flight. The task takes the queue when it first runs, i.e. once the loop has run
        what was ready with this request: every request that arrived meanwhile goes in
        the same flush. (A flusher task woken by an event, which then started the flush as
        a task of its own, made every request wait two turns of a busy loop before its
        statement was sent: issue 12.) A flush that ends kicks again."""
        if self._armed or self._stopping or not self._queue or \
                len(self._flushing) >= FLUSHES:
            return
        self._armed = True
        # In the first request's context: with tracing on, the flush's database spans
        # belong to that request's trace (alone in its flush when traffic is light).
        task = asyncio.get_running_loop().create_task(self._flush_queued(),
                                                      context=self._queue[0].context)
        self._flushing.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        self._kick()

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*self._flushing, return_exceptions=True)  # answered, not lost
        for request in self._queue:
            if not request.done.done():
                request.done.set_exception(RuntimeError("the service is stopping"))
        self._queue.clear()
        if self._release is not None:
            self._release.cancel()
            self._release = None
        kept, self._kept = self._kept, []
        for conn, _ in kept:  # back to the pool before the engine is disposed
            self._closing_task(conn)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _flush_queued(self) -> None:
        self._armed = False
        taken: list[_Request] = []
        rows = 0
        queue = self._queue
        while queue and (not taken or rows + len(queue[0].items) <= MAX_ROWS):
            request = queue.popleft()
            taken.append(request)
            rows += len(request.items)
        self._kick()  # more than MAX_ROWS were waiting: the next flush need not wait
        if taken:
            await self._flush(taken)

    async def _flush(self, taken: list[_Request]) -> None:
        try:
            outcomes = await self._write([i for r in taken for i in r.items])
        except Exception as exc:
            for request in taken:
                if not request.done.done():
                    request.done.set_exception(exc)
            return
        self.flushes += 1
        self.stored += len(outcomes)
        self._on_commit()
        start = 0
        for request in taken:
            if not request.done.done():
                request.done.set_result(outcomes[start:start + len(request.items)])
            start += len(request.items)

    async def _write(self, items: list[Item]) -> list[Stored]:
        # Within one flush the first copy of a provider result speaks for the others.
        seen: set[tuple[str, str]] = set()
        firsts = []
        for it in items:
            natural = (it.result.provider_id, it.result.result_id)
            firsts.append(natural not in seen)
            seen.add(natural)
        topics_, keys, headers, payloads = outbox.columns([it.record for it in items])
        params = {
            **decisions.columns([it.decision for it in items]),
            "idx": list(range(len(items))), "digests": [i.digest for i in items],
            "eids": [i.event_id for i in items], "firsts": firsts,
            "trace_ids": [i.trace_id for i in items],
            "dats": [i.decision.decided_at for i in items],
            "topics": topics_, "keys": keys, "headers": headers, "payloads": payloads}
        conn = await self._connection()
        try:
            rows = await (await driver_of(conn)).fetch(
                _FLUSH, *(params[name] for name in _PARAMS))
        except BaseException as exc:
            # A failed flush's connection is not kept: one the database lost is not handed
            # back to the pool as if it were sound, any other goes back to it.
            if isinstance(exc, Exception) and unavailable(exc):
                with contextlib.suppress(Exception):
                    await conn.invalidate()
            await give_back(conn)
            raise
        self._keep(conn)
        assert [r[0] for r in rows] == list(range(len(items)))
        return [Stored(outcome, event_id) for _, outcome, event_id in rows]

    # A flush's connection is kept for HOLD (1 s, as a consumer's between its batches: ADR
    # 39) and the next flush takes it instead of checking one out of the pool: a checkout
    # and checkin cost ~130-150 µs of the process's CPU (the pool's events and reset, two
    # greenlet switches; issue 12, wave 17), the price of a whole flush's statement on the
    # driver several times over, paid per flush of a few one-result requests. A kept
    # connection is used only if it is sound (`consumer.sound`: not invalidated, not
    # closed, not closed by the server); HOLD is shorter than the pool's idle check
    # (db.IDLE_CHECK), so none escapes a check the pool would have made; `stop` gives
    # them back before the engine is disposed.

    async def _connection(self) -> AsyncConnection:
        while self._kept:
            conn, _ = self._kept.pop()
            if sound(conn):
                return conn
            self._closing_task(conn)
        self.checkouts += 1
        return await self._engine.connect()

    def _keep(self, conn: AsyncConnection) -> None:
        if self._stopping or len(self._kept) >= FLUSHES:
            self._closing_task(conn)
            return
        loop = asyncio.get_running_loop()
        self._kept.append((conn, loop.time()))
        if self._release is None:
            self._release = loop.call_later(HOLD, self._release_idle)

    def _release_idle(self) -> None:
        """Give back the kept connections unused for HOLD; look again when the next
        would be."""
        self._release = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._kept and now - self._kept[0][1] >= HOLD:
            self._closing_task(self._kept.pop(0)[0])
        if self._kept:
            self._release = loop.call_later(HOLD - (now - self._kept[0][1]),
                                            self._release_idle)

    def _closing_task(self, conn: AsyncConnection) -> None:
        task = asyncio.ensure_future(give_back(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
