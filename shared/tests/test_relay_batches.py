"""The outbox relay sends a cycle's rows as one record batch per partition (issue 12): every
record lands in the partition aiokafka's default partitioner gives its key (what the
services' other producers and earlier relays chose), each key's records in the order they
were written, its headers and value as stored; rows that overflow a batch follow in the
next; a batch the broker does not acknowledge leaves every row of the cycle for the next.
A real PostgreSQL (the root conftest's `handler_db`); the producer reads the records back
out of the batches' bytes (`microcred_testkit.relay`). The real broker: the relay tests in
tests/e2e/test_outbox_relay.py."""

from __future__ import annotations

import collections
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.partitioner import DefaultPartitioner

from microcred_shared import db, outbox
from microcred_shared.db import SHARED_TABLES, add_inbox_digest, add_outbox_shard, create_tables
from microcred_shared.outbox import MAX_BATCH_BYTES, OutboxRelay, Outgoing
from microcred_testkit.relay import AckingProducer

MIGRATIONS = [create_tables(SHARED_TABLES), add_inbox_digest, add_outbox_shard]
KEYS = [f"learner-{n}-{uuid.uuid4()}".encode() for n in range(40)]


@pytest.fixture
async def engine(handler_db: Any) -> Any:
    return await handler_db(MIGRATIONS)


def relay_on(engine: Any, producer: AckingProducer) -> OutboxRelay:
    relay = OutboxRelay(engine, producer, name=f"batches-{uuid.uuid4()}")  # type: ignore[arg-type]
    relay.shards = frozenset(range(db.SHARDS))  # as if balanced (no other relay here)
    return relay


async def write(engine: Any, records: list[Outgoing]) -> None:
    async with engine.begin() as conn:
        await outbox.write(conn, records)


async def left(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM outbox"))).scalar())


def numbered(n: int, topic: str = "t.issued", key: bytes | None = None,
             size: int = 0) -> Outgoing:
    headers: list[tuple[str, bytes | None]] = [
        ("ce_id", str(uuid.uuid4()).encode()), ("n", str(n).encode()),
        ("error.bytes", b"\xff\xfe" if n % 7 == 0 else None)]  # not UTF-8, and none
    return Outgoing(topic, KEYS[n % len(KEYS)] if key is None else key, headers,
                    b"%d:" % n + b"x" * size)


async def test_each_record_goes_to_its_keys_partition_in_order_one_batch_per_partition(
        engine: Any) -> None:
    written = [numbered(n, topic=("t.issued", "t.decided")[n % 2]) for n in range(300)]
    written += [Outgoing("t.issued", None, [("ce_id", b"no-key")], b"keyless-%d" % n)
                for n in range(20)]
    await write(engine, written)
    producer = AckingProducer(partitions=8)
    producer.unavailable = {0, 1, 2, 3, 4, 5}  # a keyless record goes where a leader is
    relay = relay_on(engine, producer)
    async with engine.connect() as conn:
        assert await relay.drain_once(conn) == len(written)

    default = DefaultPartitioner()
    everything = list(range(8))
    assert sorted(p.value or b"" for p in producer.published) == sorted(
        r.payload for r in written)
    by_value = {r.payload: r for r in written}
    batches_of: dict[tuple[str, int], set[int]] = collections.defaultdict(set)
    order: dict[tuple[str, bytes | None], list[int]] = collections.defaultdict(list)
    for p in producer.published:
        row = by_value[p.value or b""]
        assert (p.topic, p.key, p.headers) == (row.topic, row.key, list(row.headers))
        if p.key is not None:  # the partition every other producer gives this key
            assert p.partition == default(p.key, everything, everything)
            order[p.topic, p.key].append(int((p.value or b"").split(b":")[0]))
        else:
            assert p.partition in (6, 7)
        batches_of[p.topic, p.partition].add(p.batch)
    assert all(len(b) == 1 for b in batches_of.values()), "a partition's rows in two batches"
    assert producer.batches == len(batches_of) <= 2 * 8
    for key, ns in order.items():
        assert ns == sorted(ns), f"{key!r} published out of order: {ns}"
    assert set(producer.codecs) == {0}


async def test_a_partitions_rows_beyond_one_batch_follow_in_the_next_ones_in_order(
        engine: Any) -> None:
    key = KEYS[0]
    size = MAX_BATCH_BYTES // 3  # three rows of this size do not fit one batch
    written = [numbered(n, key=key, size=size) for n in range(10)]
    await write(engine, written)
    producer = AckingProducer()
    relay = relay_on(engine, producer)
    async with engine.connect() as conn:
        assert await relay.drain_once(conn) == 10
    assert [int((p.value or b"").split(b":")[0]) for p in producer.published] == list(range(10))
    batches = [p.batch for p in producer.published]
    assert batches == sorted(batches) and producer.batches >= 4


async def test_a_batch_the_broker_does_not_acknowledge_leaves_all_the_cycles_rows(
        engine: Any) -> None:
    written = [numbered(n) for n in range(120)]
    await write(engine, written)
    producer = AckingProducer()
    relay = relay_on(engine, producer)
    default = DefaultPartitioner()
    refused = default(KEYS[3], list(range(8)), list(range(8)))
    producer.failing = {refused}  # one partition's leader is gone; the others acknowledge
    async with engine.connect() as conn:
        with pytest.raises(RuntimeError):
            await relay.drain_once(conn)
        assert await left(engine) == 120  # nothing deleted: not all of them were acked
        assert all(p.partition != refused for p in producer.published)
        producer.failing = set()
        producer.published.clear()
        assert await relay.drain_once(conn) == 120  # all again (consumers drop repeats)
        assert await relay.drain_once(conn) == 0
    assert await left(engine) == 0
    assert sorted(p.value or b"" for p in producer.published) == sorted(
        r.payload for r in written)
