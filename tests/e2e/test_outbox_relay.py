"""Outbox relays of one service on the real PostgreSQL and Kafka: they share the outbox by
shard, each learner's events leave in the order they were written (one relay at a time per
shard), and the others take a relay's shards over when it stops or its database session
dies (ADR 2)."""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from microcred_devstack import create_topics
from microcred_shared import outbox
from microcred_shared.db import (
    SHARDS,
    shard_of,
)
from microcred_shared.outbox import OutboxRelay, Outgoing, make_producer
from microcred_testkit.backbone import eventually, outbox_database

pytestmark = pytest.mark.integration

KEYS = [f"learner-{n}".encode() for n in range(80)]  # spread over the shards


class Noted:
    """A real record batch that remembers the keys and values appended to it."""

    def __init__(self, real: Any) -> None:
        self.real, self.records = real, []

    def append(self, **record: Any) -> Any:
        added = self.real.append(**record)
        if added is not None:
            self.records.append((record["key"], record["value"]))
        return added


class Watched:
    """The real producer, noting for every record which relay sent it and which shards
    the other relays held at that moment."""

    def __init__(self, real: Any, name: str, sent: list[tuple[str, bytes, bytes, bool]]) -> None:
        self.real, self.name, self.sent = real, name, sent
        self.others: list[OutboxRelay] = []
        self.client = real.client

    async def partitions_for(self, topic: str) -> Any:
        return await self.real.partitions_for(topic)

    def create_batch(self) -> Noted:
        return Noted(self.real.create_batch())

    async def send_batch(self, batch: Noted, topic: str, *, partition: int) -> Any:
        for key, value in batch.records:
            elsewhere = any(shard_of(key) in o.shards for o in self.others)
            self.sent.append((self.name, key, value, elsewhere))
        return await self.real.send_batch(batch.real, topic, partition=partition)


async def scratch(bb: Any) -> Any:
    return await outbox_database(bb, "relaytest")


async def write(engine: Any, topic: str, numbers: range, keys: list[bytes] = KEYS) -> None:
    """Record n goes to key n % len(keys), so each key's records are in increasing n."""
    async with engine.begin() as conn:
        await outbox.write(conn, [Outgoing(topic, keys[n % len(keys)], [("n", str(n).encode())],
                                           str(n).encode()) for n in numbers])


async def received(bb: Any, topic: str, count: int) -> list[tuple[bytes, int]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bb.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, int]] = []
    try:
        async with asyncio.timeout(60):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    out += [(r.key, int(r.value)) for r in records]
    finally:
        await consumer.stop()
    return out


def first_seen_per_key(records: list[tuple[bytes, int]]) -> dict[bytes, list[int]]:
    """Each key's numbers in the order the topic holds them, repeats (at least once) left
    out, as a consumer's inbox leaves them out."""
    seen: set[int] = set()
    out: dict[bytes, list[int]] = collections.defaultdict(list)
    for key, n in records:
        if n not in seen:
            seen.add(n)
            out[key].append(n)
    return out


def assert_in_order_and_complete(records: list[tuple[bytes, int]], total: int) -> None:
    per_key = first_seen_per_key(records)
    assert sorted(n for ns in per_key.values() for n in ns) == list(range(total)), "lost"
    for key, ns in per_key.items():
        assert ns == sorted(ns), f"{key!r}: published out of order: {ns}"


async def relays(bb: Any, engine: Any, names: str,
                 sent: list[tuple[str, bytes, bytes, bool]]) -> tuple[
        list[OutboxRelay], list[Any], list[asyncio.Task[None]]]:
    producers = [make_producer(bb.bootstrap, f"relaytest-{n}") for n in names]
    watched = [Watched(p, n, sent) for p, n in zip(producers, names, strict=True)]
    out = [OutboxRelay(engine, w, name="relaytest", poll_interval=0.05,  # type: ignore[arg-type]
                       standby_interval=0.1, balance_interval=0.2) for w in watched]
    for w, relay in zip(watched, out, strict=True):
        w.others = [r for r in out if r is not relay]
    for p in producers:
        await p.start()
    return out, producers, [asyncio.create_task(r.run()) for r in out]


def dealt(relays: list[OutboxRelay]) -> Any:
    """Every shard held by exactly one of `relays`, none holding more than its fair share."""
    async def probe() -> bool:
        held = [s for r in relays for s in r.shards]
        fair = -(-SHARDS // len(relays))
        return sorted(held) == list(range(SHARDS)) and all(
            0 < len(r.shards) <= fair for r in relays)
    return probe


async def published(sent: list[Any]) -> int:
    return len(sent)


async def close(relays: list[OutboxRelay], producers: list[Any],
                tasks: list[asyncio.Task[None]], engine: Any) -> None:
    for relay in relays:
        relay.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    for p in producers:
        await p.stop()
    await engine.dispose()


@pytest.fixture
async def topic(backbone: Any) -> str:
    name = f"relaytest.{uuid.uuid4().hex[:8]}"
    await create_topics(backbone.bootstrap, [name], partitions=8)
    return name


def test_every_key_has_one_shard_and_the_keys_spread_over_all_of_them() -> None:
    assert {shard_of(k) for k in KEYS} == set(range(SHARDS))


async def test_the_database_puts_each_row_in_its_keys_shard(backbone: Any, topic: str) -> None:
    engine = await scratch(backbone)
    try:
        await write(engine, topic, range(80))
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT key, shard FROM outbox"))).all()
        assert len(rows) == 80
        assert all(shard == shard_of(key) for key, shard in rows)
    finally:
        await engine.dispose()


async def test_two_relays_share_the_outbox_and_keep_each_learners_order_across_hand_overs(
        backbone: Any, topic: str) -> None:
    engine = await scratch(backbone)
    sent: list[tuple[str, bytes, bytes, bool]] = []
    rs, producers, tasks = await relays(backbone, engine, "ab", sent)
    try:
        assert await eventually(dealt(rs), bool, timeout=20)
        for start in range(0, 1200, 60):  # rows keep arriving while both relays run
            await write(engine, topic, range(start, start + 60))
            await asyncio.sleep(0.02)
        await eventually(lambda: published(sent), lambda n: n >= 1200, timeout=30)
        by = collections.Counter(who for who, *_ in sent)
        assert by["a"] > 0 and by["b"] > 0, f"one relay published everything: {by}"
        assert not any(elsewhere for *_, elsewhere in sent), \
            "a record was sent while another relay held its shard"

        # A third relay joins: the shards are re-dealt while rows keep coming.
        more, more_producers, more_tasks = await relays(backbone, engine, "c", sent)
        rs, producers, tasks = rs + more, producers + more_producers, tasks + more_tasks
        for relay in rs:
            relay._producer.others = [r for r in rs if r is not relay]  # type: ignore[attr-defined]
        for start in range(1200, 2400, 60):
            await write(engine, topic, range(start, start + 60))
            await asyncio.sleep(0.05)
        assert await eventually(dealt(rs), bool, timeout=20), \
            [sorted(r.shards) for r in rs]

        # One leaves gracefully: the other two take its shards and go on from its lowest id.
        rs[0].stop()
        await tasks[0]
        for start in range(2400, 3000, 60):
            await write(engine, topic, range(start, start + 60))
            await asyncio.sleep(0.02)
        assert await eventually(dealt(rs[1:]), bool, timeout=20)
        await eventually(lambda: published(sent), lambda n: n >= 3000, timeout=30)
        assert not any(elsewhere for *_, elsewhere in sent)
        records = await received(backbone, topic, 3000)
        assert len(records) == 3000, "a graceful hand-over republished records"
        assert_in_order_and_complete(records, 3000)
    finally:
        await close(rs, producers, tasks, engine)


async def test_the_others_take_over_the_shards_of_a_relay_whose_session_dies(
        backbone: Any, topic: str) -> None:
    engine = await scratch(backbone)
    sent: list[tuple[str, bytes, bytes, bool]] = []
    rs, producers, tasks = await relays(backbone, engine, "ab", sent)
    try:
        assert await eventually(dealt(rs), bool, timeout=20)
        await write(engine, topic, range(0, 400))
        await eventually(lambda: published(sent), lambda n: n >= 400, timeout=30)
        # What a crashed process leaves: its session gone, and its relay never back (it
        # would rejoin after a second: it is cancelled before that).
        async with engine.connect() as conn:
            pid = (await conn.execute(sa.text(
                "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' "
                "AND objsubid = 2 AND objid = :shard"), {"shard": min(rs[0].shards)})).scalar()
            assert (await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                       {"pid": pid})).scalar()
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        for start in range(400, 1000, 50):  # rows keep coming through the take-over
            await write(engine, topic, range(start, start + 50))
            await asyncio.sleep(0.05)
        assert await eventually(lambda: _holds_all(rs[1]), bool, timeout=20), "no take-over"
        await eventually(lambda: published(sent), lambda n: n >= 1000, timeout=30)
        records = await received(backbone, topic, 1000)
        assert_in_order_and_complete(records, 1000)
    finally:
        await close(rs, producers, tasks, engine)


async def _holds_all(relay: OutboxRelay) -> bool:
    return len(relay.shards) == SHARDS


async def test_a_relay_of_the_single_active_generation_keeps_the_new_ones_out(
        backbone: Any, topic: str) -> None:
    """A rolling upgrade: while an old instance holds the service's exclusive lock, the new
    relays publish nothing (two generations never publish one learner's events at once);
    once it is gone they take over."""
    engine = await scratch(backbone)
    sent: list[tuple[str, bytes, bytes, bool]] = []
    old = await engine.connect()
    assert (await old.execute(sa.text(
        "SELECT pg_try_advisory_lock(hashtext('microcred-outbox-relay:relaytest'))"))).scalar()
    await old.commit()
    rs, producers, tasks = await relays(backbone, engine, "ab", sent)
    try:
        await write(engine, topic, range(0, 100))
        await asyncio.sleep(1.5)
        assert sent == [] and not any(r.member for r in rs)
        await old.invalidate()  # the old instance stops: its session and lock end
        assert await eventually(lambda: published(sent), lambda n: n >= 100, timeout=30) >= 100
        assert_in_order_and_complete(await received(backbone, topic, 100), 100)
    finally:
        await close(rs, producers, tasks, engine)


class Broken:
    """A producer in the state aiokafka leaves an idempotent one in after it lost track of
    its sequence numbers: every send fails."""

    def __init__(self) -> None:
        self.stopped = False

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder
        return BatchBuilder(outbox.MAX_BATCH_BYTES, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        from aiokafka.errors import OutOfOrderSequenceNumber
        raise OutOfOrderSequenceNumber()

    async def stop(self) -> None:
        self.stopped = True


async def test_a_relay_whose_producer_broke_carries_on_with_a_new_one(backbone):
    """Seen on the real broker under load: a NotLeaderForPartition left the idempotent
    producer failing every later send, and the relay retried it forever."""
    engine = await scratch(backbone)
    topic = f"relaytest-renew-{uuid.uuid4().hex[:6]}"
    await create_topics(backbone.bootstrap, [topic])
    fresh: list[Any] = []

    async def renew() -> Any:
        producer = make_producer(backbone.bootstrap, "relaytest-renewed")
        await producer.start()
        fresh.append(producer)
        return producer

    broken = Broken()
    relay = OutboxRelay(engine, broken, name=f"renew-{topic}", poll_interval=0.05,  # type: ignore[arg-type]
                        renew=renew)
    task = asyncio.create_task(relay.run())
    try:
        await write(engine, topic, range(5))
        relay.wake()
        assert_in_order_and_complete(await received(backbone, topic, 5), 5)
        assert broken.stopped and len(fresh) == 1 and relay.producer is fresh[0]
    finally:
        relay.stop()
        await task
        for p in fresh:
            await p.stop()
        await engine.dispose()
