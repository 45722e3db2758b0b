"""Transactional outbox: rows written with the state change, published by a relay.

The relay publishes in id order, waits for the broker's acknowledgement (acks=all,
idempotent producer), then deletes the rows. A crash between the two republishes the
rows on restart; consumers dedupe on `ce_id`, so the effect stays exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_shared.contract.cloudevents import Envelope, RawHeaders, encode, new_envelope
from microcred_shared.contract.events import Event
from microcred_shared.db import unavailable
from microcred_shared.logs import outages
from microcred_shared.telemetry import parent_context, traceparent_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("microcred.outbox")


_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def recording() -> bool:
    """Whether spans go anywhere. Without an SDK provider (no OTLP endpoint) a span only
    hands the caller's trace context on, which the consumer and the relay then do directly
    (no-op spans per record and per publish: ~30-60 µs each on this machine, for nothing)."""
    return not isinstance(trace.get_tracer_provider(),
                          trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def passed_on(traceparent: str | None) -> str | None:
    """What OpenTelemetry's no-op propagation would hand on: a valid traceparent, as is."""
    return traceparent if traceparent and _TRACEPARENT.fullmatch(traceparent) else None


@dataclass(frozen=True)
class Outgoing:
    """One record for the outbox: a typed event, or raw bytes (dead letters)."""

    topic: str
    key: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    payload: bytes


def event_record(topic: str, event: Event, source: str, *, traceparent: str | None,
                 event_id: str | None = None, subject: str | None = None) -> Outgoing:
    env = new_envelope(event, source, event_id=event_id, subject=subject)
    env = Envelope(**{**env.__dict__, "traceparent": traceparent})
    return Outgoing(topic=topic, key=event.key(), headers=env.headers(), payload=encode(event))


# One statement per batch whatever its size: arrays in, rows out. A multi-row VALUES
# statement is recompiled for every batch size, which the e2e profile showed to dominate.
# INSERT_ARRAYS is the same statement for a caller that composes it into its own (with
# its own parameter markers; `columns` gives the four arrays in order).
INSERT_ARRAYS = (
    "INSERT INTO outbox (topic, key, headers, payload, created_at) "
    "SELECT t, k, h, p, now() FROM unnest(CAST({topics} AS text[]), CAST({keys} AS bytea[]), "
    "CAST({headers} AS text[]), CAST({payloads} AS bytea[])) AS u(t, k, h, p)")
_INSERT = sa.text(INSERT_ARRAYS.format(topics=":topics", keys=":keys", headers=":headers",
                                       payloads=":payloads"))
_CLAIM = sa.text(
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT :n "
    "FOR UPDATE SKIP LOCKED) RETURNING id, topic, key, headers, payload")


def pack_headers(headers: Sequence[tuple[str, bytes | None]]) -> str:
    """Headers as the outbox stores them: JSON `[name, text]` pairs; a value that is not
    UTF-8 (a dead letter keeps what it was sent) as `[name, base64, "b64"]`, none as null."""
    out: list[list[str | None]] = []
    for name, value in headers:
        if value is None:
            out.append([name, None])
            continue
        try:
            out.append([name, value.decode()])
        except UnicodeDecodeError:
            out.append([name, base64.b64encode(value).decode(), "b64"])
    return json.dumps(out)


def unpack_headers(stored: str) -> RawHeaders:
    out: RawHeaders = []
    for entry in json.loads(stored):
        name, value = entry[0], entry[1]
        if value is None:
            out.append((name, None))
        elif len(entry) > 2 and entry[2] == "b64":
            out.append((name, base64.b64decode(value)))
        else:
            out.append((name, value.encode()))
    return out


def columns(records: list[Outgoing]) -> tuple[list[str], list[bytes | None], list[str],
                                                list[bytes]]:
    """The outbox rows as INSERT_ARRAYS takes them: topics, keys, headers, payloads."""
    return ([r.topic for r in records], [r.key for r in records],
            [pack_headers(r.headers) for r in records], [r.payload for r in records])


async def write(conn: AsyncConnection, records: list[Outgoing]) -> None:
    if not records:
        return
    topics, keys, headers, payloads = columns(records)
    await conn.execute(_INSERT, {"topics": topics, "keys": keys, "headers": headers,
                                 "payloads": payloads})


_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(hashtext(:name))")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(hashtext(:name))")


class OutboxRelay:
    """Publishes a service's outbox. Single-active: several instances of a service may run,
    but only the one holding the service's PostgreSQL session advisory lock publishes (one
    learner's events then leave in id order); the others stand by and try the lock every
    `standby_interval` seconds, so one takes over once the active relay stops or dies (its
    session ends, which releases the lock). Claims run on the connection holding the lock:
    if that session is lost, the relay's next claim fails before another could publish."""

    def __init__(self, engine: AsyncEngine, producer: AIOKafkaProducer, *, batch: int = 1000,
                 poll_interval: float = 0.5, name: str = "outbox",
                 standby_interval: float = 1.0,
                 renew: Callable[[], Awaitable[AIOKafkaProducer]] | None = None) -> None:
        self._engine = engine
        self._producer = producer
        # An idempotent producer that lost track of its sequence numbers (e.g. after a
        # NotLeaderForPartition during a leader move) fails every later send with
        # OutOfOrderSequenceNumber: after a failure the relay carries on with a new one.
        self._renew = renew
        self.failures = 0
        self._batch = batch
        self._poll = poll_interval
        self._standby = standby_interval
        self._lock_name = f"microcred-outbox-relay:{name}"
        self._wake = asyncio.Event()
        self._stopping = False
        self.active = False
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                async with self._engine.connect() as conn:
                    if await self._acquire(conn):
                        try:
                            await self._publish(conn)
                        finally:
                            await self._release(conn)
                        continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                delay = min(0.5 * 2 ** min(self.failures, 4), 5.0)
                # One line when publishing stops, a count while it stays stopped, one when
                # it is back (the relay retries every few seconds for as long as it lasts).
                outages.down("outbox relay", exc)
                if self.failures == 1 and not unavailable(exc):  # a database outage is
                    # the database's line; anything else gets its traceback, once
                    log.warning("outbox relay failed; retrying every <= 5 s with a new "
                                "producer", exc_info=True)
                await self._renew_producer()
                # A plain sleep: commits wake the relay, and must not turn a failure into a
                # hot loop.
                await asyncio.sleep(delay)
                continue
            await self._pause(self._standby)  # standing by: another relay publishes

    @property
    def producer(self) -> AIOKafkaProducer:
        return self._producer

    async def _renew_producer(self) -> None:
        if self._renew is None:
            return
        old = self._producer
        try:
            self._producer = await self._renew()
        except Exception:
            log.exception("a new outbox producer could not start; keeping the old one")
            return
        try:
            await old.stop()
        except Exception:
            log.warning("the failed outbox producer did not stop cleanly", exc_info=True)

    async def _acquire(self, conn: AsyncConnection) -> bool:
        got = bool((await conn.execute(_TRY_LOCK, {"name": self._lock_name})).scalar())
        await conn.commit()  # a session lock outlives the transaction that took it
        self.active = got
        if got:
            log.info("outbox relay %s is the active one", self._lock_name)
        return got

    async def _release(self, conn: AsyncConnection) -> None:
        self.active = False
        try:
            await conn.rollback()
            await conn.execute(_UNLOCK, {"name": self._lock_name})
            await conn.commit()
        except Exception:
            # The lock must not go back to the pool with the connection: drop the session.
            await conn.invalidate()

    async def _publish(self, conn: AsyncConnection) -> None:
        while True:
            while await self.drain_once(conn):
                pass
            if self._stopping:
                return  # the final drain above leaves nothing behind on a graceful stop
            await self._pause(self._poll)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def drain_once(self, conn: AsyncConnection) -> int:
        # Claimed rows are deleted in the same transaction that waits for the broker's
        # acknowledgements: if a send fails, the rollback puts them back.
        async with conn.begin():
            rows = sorted((await conn.execute(_CLAIM, {"n": self._batch})).all(),
                          key=lambda r: r.id)
            if not rows:
                return 0
            futures = [await self._send(row) for row in rows]
            await asyncio.gather(*futures)
        self.published += len(rows)
        self.failures = 0
        outages.up("outbox relay")
        return len(rows)

    async def _send(self, row: sa.Row) -> asyncio.Future:
        headers = unpack_headers(row.headers)
        if not recording():
            return await self._producer.send(row.topic, value=row.payload, key=row.key,
                                             headers=headers)
        text = {k: v.decode(errors="replace") for k, v in headers if v is not None}
        ctx = parent_context(text.get("traceparent"), text.get("tracestate"))
        with tracer.start_as_current_span(
            f"{row.topic} publish", context=ctx, kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": row.topic,
                        "messaging.message.id": text.get("ce_id", "")},
        ):
            tp = traceparent_of()
            if tp:  # this publish span becomes the consumer's parent
                headers = [(k, v) for k, v in headers if k != "traceparent"]
                headers.append(("traceparent", tp.encode()))
            return await self._producer.send(row.topic, value=row.payload, key=row.key,
                                             headers=headers)


def make_producer(bootstrap: str, client_id: str, **client_options: Any) -> AIOKafkaProducer:
    """client_options: ServiceSettings.kafka_client_options() (SASL, ADR 19)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all",
        enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024, **client_options,
    )
