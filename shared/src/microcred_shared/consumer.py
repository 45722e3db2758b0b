"""The consumer loop every service shares: decode, dedupe, apply, commit — in that order.

A batch from Kafka is applied in one database transaction: the inbox insert (dedupe on
`ce_id`), the service's own writes, and the outbox rows for what it publishes — dead
letters included. Offsets are committed only after that transaction commits. A record
that cannot be decoded, or that the handler refuses, becomes a dead letter carrying the
original bytes and the reason; the batch goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_shared import outbox
from microcred_shared.contract.cloudevents import (
    Envelope,
    EnvelopeError,
    RawHeaders,
    decode,
    encode,
    parse_envelope,
)
from microcred_shared.contract.events import Event
from microcred_shared.contract.topics import dlq
from microcred_shared.db import driver_transaction, unavailable
from microcred_shared.logs import outages
from microcred_shared.outbox import Outgoing
from microcred_shared.telemetry import parent_context, traceparent_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("microcred.consumer")


class DatabaseUnavailable(RuntimeError):
    """A batch could not be made durable after retries: it is redelivered, not lost."""


class Rejected(Exception):
    """A handler's verdict that one record is unacceptable: it is dead-lettered with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Incoming:
    record: ConsumerRecord
    envelope: Envelope
    event: Event
    span: trace.Span | None  # None when nothing records spans: the caller's context goes on
    outgoing: list[Outgoing] = field(default_factory=list)
    # What the handler leaves to be done once its writes are committed (notify hands the
    # rows it inserted to its delivery loop): run after the batch's commit, before
    # `on_committed`; dropped with `outgoing` whenever the item's writes are rolled back
    # (its savepoint, or the batch's transaction, which a retry then applies anew).
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def traceparent(self) -> str | None:
        if self.span is None:
            return outbox.passed_on(self.envelope.traceparent)
        return traceparent_of(trace.set_span_in_context(self.span))


# A handler applies a batch of new (never seen) events inside the open transaction. It
# appends what it publishes to `item.outgoing` and raises `Rejected` for a single item
# through `reject`, or returns the items it refused with their reasons.
BatchHandler = Callable[[AsyncConnection, list[Incoming]], Awaitable[dict[int, str]]]
# Hook for the records refused as conflicting duplicates, before they are dead-lettered in
# the same transaction (assessment audits them for the sender).
ConflictHook = Callable[[AsyncConnection, list[tuple[Incoming, str]]], Awaitable[None]]
# Array parameters keep these cached statements for every batch size. The insert says
# which ids are new; only when some are not (a redelivery: rare) is a second statement
# sent for the digests stored with them. (One statement used to read `inbox` again for
# every row of every batch, joined to what it had just inserted: issue 12.) Both go to the
# driver's connection directly (`db.driver_transaction`), as the outbox rows do.
_INBOX = (
    "INSERT INTO inbox (topic, ce_id, digest, received_at) "
    "SELECT t, c, d, now() FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(t, c, d) "
    "ON CONFLICT DO NOTHING RETURNING topic, ce_id")
# The digests of ids seen before: NULL for entries from before digests were kept.
_SEEN = (
    "SELECT i.topic, i.ce_id, i.digest FROM inbox i JOIN unnest($1::text[], $2::text[]) "
    "AS u(t, c) ON i.topic = u.t AND i.ce_id = u.c")


def event_digest(envelope: Envelope, event: Event) -> bytes:
    """What a record says, for telling a redelivery from a reuse of its ce_id: its type,
    source and the event as parsed (so whitespace and key order do not count; ce_time and
    trace context, which a retrying producer may renew, are left out).

    SHA-256 of `f"{type}\\n{source}\\n"` and `event.model_dump_json()` in UTF-8, as it
    always was (inbox rows of every version compare), fed to the hash in two parts: the
    event's bytes as `cloudevents.encode` writes them, not decoded to a str by
    `model_dump_json`, encoded back and copied once more onto the prefix (~5 KB each for a
    signed credential's event: a fifth of the digest's cost, issue 12 wave 18)."""
    said = hashlib.sha256(f"{envelope.type}\n{envelope.source}\n".encode())
    said.update(encode(event))
    return said.digest()


def dead_letter(record: ConsumerRecord, reason: str, service: str) -> Outgoing:
    # The original headers as they came, bytes for bytes (not UTF-8, without a value, twice).
    headers: RawHeaders = [(k, None if v is None else bytes(v))
                           for k, v in (record.headers or ()) if not k.startswith("dlq_")]
    headers += [
        # The relay publishes at least once (a broker timeout after a send that did land
        # republishes the batch): a stable id lets a DLQ reader drop the repeat.
        ("dlq_id", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ("dlq_reason", reason[:2000].encode()),
        ("dlq_service", service.encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
    ]
    return Outgoing(topic=dlq(record.topic), key=record.key, headers=headers,
                    payload=record.value or b"")


class BatchConsumer:
    def __init__(self, *, service: str, engine: AsyncEngine, handler: BatchHandler,
                 expected: type[Event] | None,
                 on_committed: Callable[[bool], None] | None = None,
                 on_conflict: ConflictHook | None = None, hold: float = 0.0) -> None:
        """`on_committed(wrote)` runs after each batch's commit; `wrote`: whether the
        transaction wrote outbox rows (the handler's, its `outgoing`, dead letters).
        `hold`: seconds a connection is kept after a batch for the next one (a service's
        subscriptions: HOLD; `close()` gives it back); 0 gives it back at once."""
        self.service = service
        self._on_conflict = on_conflict
        self._engine = engine
        self._handler = handler
        self._expected = expected
        self._on_committed = on_committed
        self.applied = 0
        self.dead_lettered = 0
        self._hold = hold
        # The connection kept between batches (see HOLD), when the subscription is busy.
        self._held: AsyncConnection | None = None
        self._held_since = 0.0
        self._release: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Give the kept connection back (the service stops; no batch is in flight)."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        held, self._held = self._held, None
        if held is not None:
            await give_back(held)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def apply(self, records: Sequence[ConsumerRecord]) -> None:
        """Make a batch durable. Retries transient database failures; raises if it can't."""
        delay = 0.2
        for _ in range(8):
            try:
                wrote, committed = await self._apply_once(records)
                outages.up("database")
            except Exception as exc:
                if not unavailable(exc):
                    raise
                outages.down("database", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for done in committed:
                try:
                    done()
                except Exception:  # the batch is durable whatever a follow-up does
                    log.exception("after-commit step of a batch failed")
            if self._on_committed:
                self._on_committed(wrote)
            return
        raise DatabaseUnavailable("database unavailable; batch left uncommitted for redelivery")

    async def _apply_once(self, records: Sequence[ConsumerRecord],
                          ) -> tuple[bool, list[Callable[[], None]]]:
        """Says whether the committed transaction wrote outbox rows, and what its items
        left to do after the commit (`Incoming.after_commit`)."""
        items: list[Incoming] = []
        undecodable: list[Outgoing] = []
        spans = outbox.recording()
        for record in records:
            try:
                env = parse_envelope(record.headers)
                event = decode(env, record.value, self._expected)
            except EnvelopeError as exc:
                undecodable.append(dead_letter(record, str(exc), self.service))
                continue
            span = tracer.start_span(
                f"{record.topic} process", context=parent_context(env.traceparent, env.tracestate),
                kind=trace.SpanKind.CONSUMER,
                attributes={"messaging.system": "kafka", "messaging.message.id": env.id,
                            "messaging.destination.name": record.topic,
                            "cloudevents.event_type": env.type},
            ) if spans else None
            items.append(Incoming(record, env, event, span))
        try:
            try:
                applied, refused, wrote = await self._transaction(items, undecodable,
                                                                  whole=True)
            except _HandlerFailed:
                # The whole transaction is rolled back (inbox rows included): one bad record
                # must not take the others with it, so apply each in its own savepoint.
                log.exception("batch handler failed; applying records one by one")
                for item in items:
                    item.outgoing.clear()
                    item.after_commit.clear()
                applied, refused, wrote = await self._transaction(items, undecodable,
                                                                  whole=False)
            self.applied += applied
            self.dead_lettered += refused + len(undecodable)
            return wrote, [done for item in items for done in item.after_commit]
        finally:
            for item in items:
                if item.span is not None:
                    item.span.end()

    async def _transaction(self, items: list[Incoming], undecodable: list[Outgoing], *,
                           whole: bool) -> tuple[int, int, bool]:
        """One transaction: inbox, handler, outbox. `whole`: the handler takes the batch at
        once, without a savepoint (two round trips fewer per batch; a failure raises
        _HandlerFailed and the caller starts over one by one). Returns the applied and
        refused counts and whether outbox rows were written."""
        letters = list(undecodable)
        # BEGIN, the inbox, the outbox rows and COMMIT on the driver's connection, the
        # handler's statements through SQLAlchemy, all in one transaction: SQLAlchemy's
        # work per statement was most of a small batch's cost in the consumer (issue 12).
        conn = await self._connection()
        try:
            async with driver_transaction(conn) as driver:
                outbox.taken(conn)  # count this transaction's rows only
                fresh, conflicts = await self._dedupe(driver, items)
                if conflicts and self._on_conflict is not None:
                    await self._on_conflict(conn, conflicts)
                letters.extend(dead_letter(item.record, reason, self.service)
                               for item, reason in conflicts)
                refused = await (self._run_whole(conn, fresh) if whole
                                 else self._run_one_by_one(conn, fresh))
                for index, item in enumerate(fresh):
                    if index in refused:
                        if item.span is not None:
                            item.span.set_attribute("microcred.rejected", refused[index])
                        letters.append(dead_letter(item.record, refused[index], self.service))
                    else:
                        letters.extend(item.outgoing)
                await outbox.write_on(driver, conn, letters)
                wrote = outbox.taken(conn) > 0
        except BaseException:
            await give_back(conn)  # a failed transaction's connection is not kept
            raise
        if self._hold > 0:
            self._keep(conn)
        else:
            await give_back(conn)
        return len(fresh) - len(refused), len(refused) + len(conflicts), wrote

    async def _connection(self) -> AsyncConnection:
        """The kept connection if it is sound, else one from the pool. A batch applied while
        another is (never in a service: one loop per subscription) gets its own."""
        held, self._held = self._held, None
        if held is not None:
            if sound(held):
                return held
            await give_back(held)
        return await self._engine.connect()

    def _keep(self, conn: AsyncConnection) -> None:
        if self._held is not None:  # two at once: one is enough
            self._closing_task(conn)
            return
        loop = asyncio.get_running_loop()
        self._held, self._held_since = conn, loop.time()
        if self._release is None:
            self._release = loop.call_later(self._hold, self._release_if_idle)

    def _release_if_idle(self) -> None:
        self._release = None
        if self._held is None:
            return  # in use: its batch keeps it and starts the timer again
        idle = asyncio.get_running_loop().time() - self._held_since
        if idle < self._hold:
            self._release = asyncio.get_running_loop().call_later(self._hold - idle,
                                                                  self._release_if_idle)
            return
        held, self._held = self._held, None
        self._closing_task(held)

    def _closing_task(self, conn: AsyncConnection) -> None:
        task = asyncio.ensure_future(give_back(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _dedupe(self, driver: Any, items: list[Incoming],
                      ) -> tuple[list[Incoming], list[tuple[Incoming, str]]]:
        """The items never seen before, and those that reuse a seen ce_id for a different
        event (with the reason). A redelivery of the same event is dropped silently."""
        if not items:
            return [], []
        # The first of a batch's copies of an id is the one recorded and applied.
        digests = [event_digest(i.envelope, i.event) for i in items]
        first: dict[tuple[str, str], bytes] = {}
        for item, digest in zip(items, digests, strict=True):
            first.setdefault((item.record.topic, item.envelope.id), digest)
        new = {(t, c) for t, c in await driver.fetch(
            _INBOX, [t for t, _ in first], [c for _, c in first], list(first.values()))}
        stored: dict[tuple[str, str], bytes | None] = {}
        if len(new) < len(first):
            seen = [k for k in first if k not in new]
            stored = {(t, c): d for t, c, d in await driver.fetch(
                _SEEN, [t for t, _ in seen], [c for _, c in seen])}
        fresh: list[Incoming] = []
        conflicts: list[tuple[Incoming, str]] = []
        applied: set[tuple[str, str]] = set()
        for item, digest in zip(items, digests, strict=True):
            k = (item.record.topic, item.envelope.id)
            known = first[k] if k in new else stored.get(k)
            if k in new and k not in applied:
                applied.add(k)
                fresh.append(item)
            elif known is not None and known != digest:
                conflicts.append((item, f"ce_id {item.envelope.id!r} was already used for a "
                                        "different payload; a new event needs a new ce_id"))
        return fresh, conflicts

    async def _run_whole(self, conn: AsyncConnection, fresh: list[Incoming]) -> dict[int, str]:
        if not fresh:
            return {}
        try:
            return await self._handler(conn, fresh)
        except Exception as exc:
            if unavailable(exc):
                raise
            raise _HandlerFailed from exc

    async def _run_one_by_one(self, conn: AsyncConnection, fresh: list[Incoming],
                              ) -> dict[int, str]:
        refused: dict[int, str] = {}
        for index, item in enumerate(fresh):
            savepoint = await conn.begin_nested()
            try:
                verdict = await self._handler(conn, [item])
                if verdict:
                    refused[index] = next(iter(verdict.values()))
                await savepoint.commit()
            except Exception as exc:
                if unavailable(exc):
                    raise
                await savepoint.rollback()
                item.outgoing.clear()
                item.after_commit.clear()
                refused[index] = f"{type(exc).__name__}: {exc}"
        return refused


# How long a service's subscription keeps its connection after a batch (seconds). Batches
# that follow each other within it share one connection, instead of a checkout from the pool
# and a checkin (with the pool's events and reset) per batch - about a hundred Python calls
# and two greenlet switches, which a batch of two records pays in full (issue 12). Shorter
# than db.IDLE_CHECK: a connection in use this recently is not checked at checkout either.
# One the driver knows closed is replaced (`sound`); one that fails a batch is dropped.
HOLD = 1.0


def sound(conn: AsyncConnection) -> bool:
    """Whether a kept connection may serve the next batch: not invalidated, not closed,
    and its driver connection not closed by the server (the pool's checkout check)."""
    try:
        if conn.closed or conn.invalidated:
            return False
        sync: Any = conn.sync_connection  # set while the connection is open
        return not sync.connection.driver_connection.is_closed()
    except Exception:
        return False


async def give_back(conn: AsyncConnection) -> None:
    """Return a connection to the pool; one that cannot go back cleanly is dropped.
    Shielded, as SQLAlchemy's own `async with engine.connect()` closes: a cancelled batch
    (a service stopping) still returns its connection."""
    try:
        await asyncio.shield(conn.close())
    except Exception:
        try:
            await conn.invalidate()
        except Exception:
            pass


class _HandlerFailed(Exception):
    """The handler raised on a whole batch: its transaction is rolled back."""


def reject_all(items: list[Incoming], check: Callable[[Incoming], str | None]) -> dict[int, str]:
    return {i: reason for i, item in enumerate(items) if (reason := check(item))}


def records_of(raw: Any) -> tuple[ConsumerRecord, ...]:
    return raw if isinstance(raw, tuple) else (raw,)


def _readable(value: Any) -> bytes:
    if value is None:
        return b""
    return bytes(value).decode("utf-8", "replace").encode()


def _decodable(headers: Any) -> bool:
    """Whether every header value is UTF-8 already (nearly every record): such a record is
    handed on as it is, without a copy (per record and header, a copy and a decode and
    encode were 5 % of issuance's CPU in the e2e profile, issue 12)."""
    try:
        for _, value in headers or ():
            value.decode()  # None has no decode: AttributeError
    except (AttributeError, UnicodeDecodeError):
        return False
    return True


async def lenient_batch_parser(records: tuple[ConsumerRecord, ...],
                               original: Callable[..., Awaitable[Any]]) -> Any:
    """FastStream's batch parser, made unable to fail on what a record carries.

    FastStream decodes every header of a batch as UTF-8 before any handler runs: one header
    that is not UTF-8, or has no value, raised there, the batch never reached the consumer
    and later commits went past it (issue 13). Its parser now sees copies whose header
    values are always decodable; the message keeps the records exactly as they came, so the
    consumer judges each one itself and dead-letters the bad ones with their bytes intact."""
    # What FastStream builds from each record (its body, its headers as a dict) is read by
    # nobody but the telemetry middleware, installed only where spans are recorded: else
    # the message is built from the first record alone (per record, a dict of decoded
    # headers was most of the parser's cost, issue 12). The handler reads `raw_message`.
    shown = records if outbox.recording() else records[:1]
    safe = tuple(r if _decodable(r.headers) else
                 dataclasses.replace(r, headers=[(k, _readable(v)) for k, v in r.headers or ()])
                 for r in shown)
    message = await original(safe)
    message.raw_message = records
    return message
