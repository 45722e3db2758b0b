"""Transactional outbox: rows written with the state change, published by a relay.

The relays of a service's instances share the rows by shard (the Kafka key's); each shard
is published by one relay at a time, in id order. A relay waits for the broker's
acknowledgement (acks=all, idempotent producer), then deletes the rows. A crash between
the two republishes the rows on restart; consumers dedupe on `ce_id`, so the effect stays
exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_shared.contract.cloudevents import RawHeaders, encode, new_envelope
from microcred_shared.contract.events import Event
from microcred_shared.db import SHARD_OF_KEY, SHARDS, driver_of, unavailable
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
    env = new_envelope(event, source, event_id=event_id, subject=subject,
                       traceparent=traceparent)
    return Outgoing(topic=topic, key=event.key(), headers=env.headers(), payload=encode(event))


# One statement per batch whatever its size: arrays in, rows out. A multi-row VALUES
# statement is recompiled for every batch size, which the e2e profile showed to dominate.
# INSERT_ARRAYS is the same statement for a caller that composes it into its own (with
# its own parameter markers; `columns` gives the four arrays in order). Each row's shard
# (which relay publishes it, ADR 2) is computed from its key by the database. A caller
# that runs it inside a consumer batch says so with `wrote` (the relay is woken after a
# batch's commit only when the batch wrote outbox rows).
INSERT_ARRAYS = (
    "INSERT INTO outbox (topic, key, headers, payload, created_at, shard) "
    "SELECT t, k, h, p, now(), " + SHARD_OF_KEY.format(key="k") + " "
    "FROM unnest(CAST({topics} AS text[]), CAST({keys} AS bytea[]), "
    "CAST({headers} AS text[]), CAST({payloads} AS bytea[])) AS u(t, k, h, p)")
_INSERT = sa.text(INSERT_ARRAYS.format(topics=":topics", keys=":keys", headers=":headers",
                                       payloads=":payloads"))
_INSERT_DRIVER = INSERT_ARRAYS.format(topics="$1", keys="$2", headers="$3", payloads="$4")
# A relay's cycle: one statement, in autocommit on the session that holds the shard locks
# (ADR 2). It deletes the rows of the previous cycle, which the broker has acknowledged
# ($1), and reads the claimed shards' oldest rows ($2, $3) - not those it just deleted: the
# two parts see one snapshot (an anti-join: `id <> ALL($1)` compared each row with every
# id, 9 ms instead of 1.3 for 1,000 rows behind a backlog). It used to be BEGIN, `DELETE
# ... RETURNING` of the oldest rows (FOR UPDATE), the sends, and COMMIT once the broker
# acked: three round trips per claim and a transaction held open across the broker's acks
# (issue 12, ADR 37). A row is still deleted
# only after its ack: a crash or a failed send before the next cycle republishes it (at
# least once; consumers drop repeats by ce_id). No row lock: a shard's rows are read and
# deleted only by the relay holding its lock. No SKIP LOCKED: skipping a row would publish
# a learner's later event first.
_CYCLE = (
    "WITH acked AS (DELETE FROM outbox WHERE id = ANY($1::bigint[])) "
    "SELECT id, topic, key, headers, payload FROM outbox o WHERE shard = ANY($2::smallint[]) "
    "AND NOT EXISTS (SELECT FROM unnest($1::bigint[]) AS a(id) WHERE a.id = o.id) "
    "ORDER BY id LIMIT $3")
# The acknowledged rows alone: before a shard is let go (its next holder must not find
# them) and on leaving.
_ACKED = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"


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
    wrote(conn, len(records))


async def write_on(driver: Any, conn: AsyncConnection, records: list[Outgoing]) -> None:
    """`write` on the driver's connection of `conn` (asyncpg), inside the transaction of
    `db.driver_transaction(conn)` that yielded it: the consumer loop's rows."""
    if not records:
        return
    await driver.execute(_INSERT_DRIVER, *columns(records))
    wrote(conn, len(records))


# Outbox rows written on a connection since `taken` last read it: the consumer loop wakes
# the relay after a batch's commit only when its transaction wrote some (a wake is a claim
# transaction on the relay's connection; most batches of most subscriptions write none).
_WROTE = "microcred.outbox.wrote"


def wrote(conn: AsyncConnection, rows: int) -> None:
    """Note that the open transaction on `conn` wrote `rows` outbox rows (`write` does)."""
    conn.info[_WROTE] = conn.info.get(_WROTE, 0) + rows


def taken(conn: AsyncConnection) -> int:
    """The outbox rows noted on `conn` since the last call, and start counting again.
    Counts rows a savepoint rolled back too: a wake too many costs one empty claim, a
    wake too few would leave rows for the relay's next poll."""
    return int(conn.info.pop(_WROTE, 0))


# Lock keys (two int4 in pg_locks: classid, objid): the shard locks are (hashtext(name),
# shard). Membership is a *shared* lock on the one-key form hashtext(name), the very lock a
# relay of the single-active generation took exclusively: the two generations can never
# publish at once during a rolling upgrade, and pg_locks counts the live relays.
_JOIN = sa.text("SELECT pg_try_advisory_lock_shared(hashtext(:name)), hashtext(:name)")
_LEAVE = sa.text("SELECT pg_advisory_unlock_all()")
# A member's claims commit without waiting for their WAL to reach the disk: a claim only
# deletes rows the broker has acknowledged, so losing it in a server crash republishes them
# (at least once; consumers drop them by ce_id), never loses one. Everything else - the
# batches that write the rows - still commits synchronously, and their commits flush the
# claims' WAL before them. One flush fewer per claim (issue 12). Reset on leaving: the
# connection goes back to the pool.
_ASYNC_COMMITS = sa.text("SET synchronous_commit = off")
_SYNC_COMMITS = sa.text("RESET synchronous_commit")
# Balancing, once a second, goes to the driver's connection like the cycles: each of these
# is one round trip in autocommit (through SQLAlchemy: BEGIN, the statements, COMMIT).
_TRY_SHARD = "SELECT pg_try_advisory_lock($1::int, $2::int)"
_FREE_SHARD = "SELECT pg_advisory_unlock($1::int, $2::int)"
# Who holds what, in this database: members (objsubid 1: the int8 key, split in two oids)
# and the shards held by other sessions (objsubid 2: the two int4 keys).
_LOCKS = (
    "SELECT objsubid, objid::bigint AS objid, pid = pg_backend_pid() AS mine FROM pg_locks "
    "WHERE locktype = 'advisory' AND granted AND database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database()) AND ("
    "(objsubid = 1 AND classid::bigint = $1::bigint AND objid::bigint = $2::bigint) OR "
    "(objsubid = 2 AND classid::bigint = $2::bigint))")


class OutboxRelay:
    """Publishes a service's outbox, shared with the service's other instances by shard.

    Every row carries the shard of its Kafka key (`shard_of`); a relay publishes only the
    shards whose PostgreSQL session advisory locks it holds, each in id order, so one
    learner's events leave in the order they were written while several instances publish
    (ADR 2). Relays are members through a shared lock; every `balance_interval` seconds a
    relay counts the members and keeps its fair share, ceil(SHARDS / members): it lets go
    of extra shards between two claims (nothing in flight) and takes free ones. A relay
    that dies loses its session and with it its locks; the others take the shards over and
    go on from their lowest id. Claims run on the connection that holds the locks: if that
    session is lost, the relay's next claim fails before another could have published."""

    def __init__(self, engine: AsyncEngine, producer: AIOKafkaProducer, *, batch: int = 1000,
                 poll_interval: float = 0.5, name: str = "outbox",
                 standby_interval: float = 1.0, balance_interval: float = 1.0,
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
        self._balance_every = balance_interval
        # Rows the broker acknowledged, deleted by the next cycle's statement: the next
        # wake-up's, at the latest the next poll's (or before a shard is let go).
        self._acked: list[int] = []
        self._lock_name = f"microcred-outbox-relay:{name}"
        self._key = 0  # hashtext(lock name), from the database
        self._wake = asyncio.Event()
        self._stopping = False
        self.member = False
        self.shards: frozenset[int] = frozenset()  # the shards this relay publishes
        self.members = 0  # live relays of the service, at the last balance
        self.published = 0

    @property
    def active(self) -> bool:
        """Whether this relay publishes something (it holds at least one shard)."""
        return self.member and bool(self.shards)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                async with self._engine.connect() as conn:
                    if await self._join(conn):
                        try:
                            await self._publish(conn)
                        finally:
                            await self._leave(conn)
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
            # Not a member: a relay of the single-active generation publishes (an upgrade
            # in progress); try again shortly.
            await self._pause(self._standby)

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

    async def _join(self, conn: AsyncConnection) -> bool:
        got, key = (await conn.execute(_JOIN, {"name": self._lock_name})).one()
        if got:
            await conn.execute(_ASYNC_COMMITS)
        await conn.commit()  # a session lock and setting outlive the transaction
        self.member, self._key = bool(got), int(key)
        if got:
            log.info("outbox relay %s joined", self._lock_name)
        return self.member

    async def _leave(self, conn: AsyncConnection) -> None:
        self.member, self.shards = False, frozenset()
        try:
            await conn.rollback()
            await self._delete_acked(conn)  # before the shards are let go
            await conn.execute(_LEAVE)
            await conn.execute(_SYNC_COMMITS)
            await conn.commit()
        except Exception:
            # The locks must not go back to the pool with the connection: drop the session.
            await conn.invalidate()

    async def balance(self, conn: AsyncConnection) -> None:
        """Keep a fair share of the shards: ceil(SHARDS / members). Called between claims,
        on the connection that holds the locks, so nothing of a shard let go is in flight;
        the rows of the last cycle are deleted before, so its next holder finds none of them."""
        driver = await driver_of(conn)
        key = self._key & 0xFFFF_FFFF_FFFF_FFFF  # the int8 key as pg_locks splits it
        rows = await driver.fetch(_LOCKS, key >> 32, key & 0xFFFF_FFFF)
        self.members = max(1, sum(1 for r in rows if r["objsubid"] == 1))
        taken = {int(r["objid"]) for r in rows if r["objsubid"] == 2 and not r["mine"]}
        fair = -(-SHARDS // self.members)
        mine = set(self.shards)
        if len(mine) > fair:
            await self._delete_acked(conn)  # committed (autocommit) before any unlock
            for shard in sorted(mine)[fair:]:
                await driver.fetchval(_FREE_SHARD, self._key, shard)
                mine.discard(shard)
        elif len(mine) < fair:
            free = [s for s in range(SHARDS) if s not in mine and s not in taken]
            random.shuffle(free)  # relays joining together do not all race for shard 0
            for shard in free:
                if len(mine) >= fair:
                    break
                if await driver.fetchval(_TRY_SHARD, self._key, shard):
                    mine.add(shard)
        if mine != self.shards:
            log.info("outbox relay %s publishes %d of %d shards (%d relays)",
                     self._lock_name, len(mine), SHARDS, self.members)
        self.shards = frozenset(mine)

    async def _publish(self, conn: AsyncConnection) -> None:
        loop = asyncio.get_running_loop()
        due = 0.0
        while True:
            while True:
                if loop.time() >= due and not self._stopping:
                    await self.balance(conn)
                    due = loop.time() + self._balance_every
                sent = await self.drain_once(conn)
                # A short claim took all there was: what is committed later wakes the relay
                # (set during the claim, the wake makes the pause below return at once), so
                # claiming again now would be an empty cycle per wake. Stopping, it drains
                # until a claim comes back empty (that last cycle deletes what was acked).
                if not sent or (sent < self._batch and not self._stopping):
                    break
            if self._stopping:
                return  # the final drain above leaves nothing of its shards behind
            await self._pause(min(self._poll, max(due - loop.time(), 0.0)))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def drain_once(self, conn: AsyncConnection) -> int:
        """One cycle: delete what the broker acknowledged last time and claim the shards'
        oldest rows in one statement (`_CYCLE`), send them and wait for the broker. They
        are deleted by the next cycle (or `_delete_acked`): a failed send leaves them."""
        if not self.shards:
            await self._delete_acked(conn)
            return 0
        driver = await driver_of(conn)
        rows = await driver.fetch(_CYCLE, self._acked, sorted(self.shards), self._batch)
        self._acked = []
        if not rows:
            return 0
        spans = recording()  # asked once per cycle, not per row (an ABC check each)
        await asyncio.gather(*await self._send(rows, spans))
        self._acked = [row["id"] for row in rows]
        self.published += len(rows)
        self.failures = 0
        outages.up("outbox relay")
        return len(rows)

    async def _delete_acked(self, conn: AsyncConnection) -> None:
        if self._acked:
            await (await driver_of(conn)).execute(_ACKED, self._acked)
            self._acked = []

    async def _send(self, rows: Sequence[Any], spans: bool) -> list[asyncio.Future[Any]]:
        """The rows as one record batch per partition (`create_batch`, `send_batch`), each
        row in the partition aiokafka's partitioner would give its key (`partition_of`),
        in id order within it: the same records, batches and produce requests as a `send`
        per row, without its per-record coroutines, size estimate, partition lookup and
        future (~10 µs a record, issue 12). A partition's rows that do not fit one batch
        (`max_batch_size`) go in the next, sent after it. The futures are the batches'."""
        producer = self._producer
        open_: dict[tuple[str, int], Any] = {}  # (topic, partition): its batch being filled
        partitions: dict[str, list[int]] = {}
        sent: list[asyncio.Future[Any]] = []
        for row in rows:
            topic, key, payload = row["topic"], row["key"], row["payload"]
            if (all_partitions := partitions.get(topic)) is None:
                # Waits for the topic's metadata the first time, as `send` does.
                all_partitions = partitions[topic] = list(await producer.partitions_for(topic))
            if key is None:  # any partition with a leader, as the default partitioner
                partition = partition_of(
                    None, all_partitions,
                    list(producer.client.cluster.available_partitions_for_topic(topic)))
            else:
                partition = partition_of(key, all_partitions, all_partitions)
            headers = unpack_headers(row["headers"])
            if spans:
                headers = self._traced(topic, headers)
            batch = open_.get((topic, partition))
            if batch is None:
                batch = open_[topic, partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=payload, headers=headers) is None:
                # Full: it goes now; the partition's next rows go in a new one, after it
                # (aiokafka queues a partition's batches in the order they are sent).
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_[topic, partition] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=payload, headers=headers)
        for (topic, partition), batch in open_.items():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        return sent

    @staticmethod
    def _traced(topic: str, headers: RawHeaders) -> RawHeaders:
        """A producer span for one record (spans recorded): its traceparent replaces the
        caller's, so the consumer's span becomes its child."""
        text = {k: v.decode(errors="replace") for k, v in headers if v is not None}
        ctx = parent_context(text.get("traceparent"), text.get("tracestate"))
        with tracer.start_as_current_span(
            f"{topic} publish", context=ctx, kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic,
                        "messaging.message.id": text.get("ce_id", "")},
        ):
            tp = traceparent_of()
            if tp:  # this publish span becomes the consumer's parent
                headers = [(k, v) for k, v in headers if k != "traceparent"]
                headers.append(("traceparent", tp.encode()))
        return headers


_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key, the value `aiokafka.partitioner.murmur2` gives (and the
    Java client's `Utils.murmur2`): its 4-byte words read by one `struct` call and the
    32-bit arithmetic without its redundant masks, ~2x faster. Every record a relay sends
    is hashed: ~8 µs of pure Python per 64-byte learner key before (issue 12)."""
    length = len(data)
    h = 0x9747B28C ^ length
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    tail, base = length & 3, length & ~3
    if tail:
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_of(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's DefaultPartitioner, with `murmur2` above: the same partition for every
    key (a learner's events stay in order with what other producers sent before)."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


# A record batch's size limit (aiokafka's max_batch_size): a relay cycle's rows for one
# partition fill as many as they need, sent in order.
MAX_BATCH_BYTES = 256 * 1024


def make_producer(bootstrap: str, client_id: str, *, compression: str = "none",
                  **client_options: Any) -> AIOKafkaProducer:
    """client_options: ServiceSettings.kafka_client_options() (SASL, ADR 19).

    No linger: a claim's sends are all queued before the relay waits for them (nothing in
    between yields to the producer's sender), so they leave in one produce request either
    way, and a 5 ms linger only made every claim, hence every hop, 5 ms later (measured on
    the real broker: 1.00 produce requests per claim of 5 rows with 5 ms or none; acked in
    a median 10.7-19.0 ms against 1.6-5.4 ms, issue 12).

    `compression` ("none", "lz4", "zstd"; ServiceSettings.kafka_compression) is the codec of
    every record batch it sends (aiokafka's, through cramjam). The broker keeps the batches
    as sent (topics' compression.type stays "producer") and every consumer decompresses
    them itself; with lz4 a credential's events take about a quarter of the bytes on the
    broker's disk and wire, for more CPU in the producing service at a few hundred per
    second (bench/e2e README, issue 12 wave 17: off by default)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all",
        enable_idempotence=True, linger_ms=0, max_batch_size=MAX_BATCH_BYTES,
        compression_type=None if compression == "none" else compression,
        partitioner=partition_of, **client_options,
    )
