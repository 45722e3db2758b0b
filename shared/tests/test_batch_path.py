"""What a batch costs on its way from a subscription's loop to its commit (issue 12): the
loop hands it straight to the consumer (not through FastStream's per-message machinery)
and a busy subscription keeps its database connection from one batch to the next. Neither
may cost reliability: a batch that is not durable is read again from its first record, a
stopping service still waits for the batch in flight, a connection the server ended is
replaced unnoticed, one that failed a batch is not kept. Real PostgreSQL (`handler_db`)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from faststream._internal.endpoint.subscriber.utils import MultiLock
from faststream.kafka import TestKafkaBroker

from microcred_shared import db, runtime
from microcred_shared.consumer import BatchConsumer, Incoming
from microcred_shared.contract.cloudevents import Envelope
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.db import SHARED_TABLES, add_inbox_digest, add_outbox_shard, create_tables
from microcred_shared.outbox import Outgoing
from microcred_shared.runtime import ServiceRuntime, consume_directly
from microcred_shared.settings import ServiceSettings
from microcred_testkit.backbone import result

TOPIC = "microcred.assessment.results.v1"
MIGRATIONS = [create_tables(SHARED_TABLES), add_inbox_digest, add_outbox_shard]
_offsets = itertools.count()


def record(partition: int = 0, offset: int | None = None) -> ConsumerRecord:
    event = result("lakeshore-college", "lakeshore-workplace-safety", passed=True)
    env = Envelope(id=str(uuid.uuid4()), type=event.ce_type,
                   source="/providers/lakeshore-college", time=datetime.now(UTC))
    return ConsumerRecord(TOPIC, partition, next(_offsets) if offset is None else offset, 0, 0,
                          b"k", event.model_dump_json().encode(), None, 0, 0, env.headers())


class Backends:
    """A handler that writes one outbox row per event and notes the server process
    (pg_backend_pid) of each batch's connection."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    async def __call__(self, conn: Any, items: list[Incoming]) -> dict[int, str]:
        self.pids.append(int((await conn.execute(sa.text("SELECT pg_backend_pid()")))
                             .scalar_one()))
        for item in items:
            item.outgoing.append(Outgoing("applied", b"k", [], item.envelope.id.encode()))
        return {}


def checkouts(engine: Any) -> list[int]:
    seen: list[int] = []
    sa.event.listen(engine.sync_engine.pool, "checkout", lambda *_: seen.append(1))
    return seen


@pytest.fixture
async def engine(handler_db: Any) -> Any:
    return await handler_db(MIGRATIONS)


async def test_a_busy_subscription_keeps_one_connection_and_gives_it_back_once_idle(
        engine: Any) -> None:
    """Before: every batch checked a connection out of the pool and back in (the pool's
    events and reset: about a hundred Python calls, two greenlet switches)."""
    handler = Backends()
    consumer = BatchConsumer(service="test", engine=engine, handler=handler,
                             expected=AssessmentResultSubmitted, hold=0.3)
    taken = checkouts(engine)
    for _ in range(5):
        await consumer.apply([record(), record()])
    assert (len(taken), len(set(handler.pids))) == (1, 1)
    assert engine.sync_engine.pool.checkedout() == 1  # kept for the next batch
    assert consumer.applied == 10
    await asyncio.sleep(0.6)  # idle longer than `hold`: back in the pool
    assert engine.sync_engine.pool.checkedout() == 0
    await consumer.apply([record()])  # and checked out again when a batch comes
    assert len(taken) == 2
    await consumer.close()
    assert engine.sync_engine.pool.checkedout() == 0


async def test_a_kept_connection_the_server_ended_is_replaced_without_a_failed_batch(
        engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's checkout check, for the kept connection: one the driver saw closed is
    not used; the batch goes to a new connection at once, with no retry."""
    handler = Backends()
    consumer = BatchConsumer(service="test", engine=engine, handler=handler,
                             expected=AssessmentResultSubmitted, hold=30.0)
    await consumer.apply([record()])
    async with engine.connect() as admin:
        await admin.execute(sa.text("SELECT pg_terminate_backend(:p, 5000)"),
                            {"p": handler.pids[0]})
    await asyncio.sleep(0.05)  # the client reads the end of its socket
    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:  # apply's pause before a retry
        slept.append(seconds)

    monkeypatch.setattr("microcred_shared.consumer.asyncio.sleep", no_sleep)
    await consumer.apply([record(), record()])
    assert consumer.applied == 3 and slept == []
    assert handler.pids[1] != handler.pids[0]
    await consumer.close()


async def test_a_connection_that_failed_a_batch_is_not_kept(engine: Any) -> None:
    """The batch is retried (the database looked unavailable) on a connection from the
    pool, and the failed one went back to the pool (or was dropped), not kept aside."""
    fails = [ConnectionResetError("the server went away mid-batch")]
    pids = Backends()

    async def flaky(conn: Any, items: list[Incoming]) -> dict[int, str]:
        await pids(conn, items)
        if fails:
            raise fails.pop()
        return {}

    consumer = BatchConsumer(service="test", engine=engine, handler=flaky,
                             expected=AssessmentResultSubmitted, hold=30.0)
    taken = checkouts(engine)
    await consumer.apply([record()])
    assert consumer.applied == 1 and len(taken) == 2 and len(pids.pids) == 2
    assert engine.sync_engine.pool.checkedout() == 1  # the one that applied it, kept
    await consumer.close()
    assert engine.sync_engine.pool.checkedout() == 0


async def test_the_loop_hands_a_batch_straight_to_the_consumer(
        engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without spans to record, a subscription's loop passes FastStream's per-message
    machinery by (its exit stack, context, middlewares, parser, decoder, call wrappers:
    about 300 Python calls per batch): the batch is applied and its offsets noted."""
    monkeypatch.setattr(db, "IDLE_CHECK", 3600.0)
    rt = ServiceRuntime(ServiceSettings(), [])
    rt.engine = engine
    rt._register(TOPIC, Backends(), AssessmentResultSubmitted, None)
    subscriber = rt.subscribers[TOPIC]

    async def not_here(msg: Any) -> Any:
        raise AssertionError("the batch went through FastStream's process_message")

    monkeypatch.setattr(subscriber, "process_message", not_here)
    async with TestKafkaBroker(rt.broker):
        batch = (record(offset=7), record(offset=8))
        await subscriber.consume_one(batch)
    assert rt.consumers[TOPIC].applied == 2
    assert rt.commits[TOPIC].pending == {TopicPartition(TOPIC, 0): 9}
    await rt.consumers[TOPIC].close()


class Rewinds:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


async def test_a_batch_that_is_not_durable_is_read_again_from_each_partitions_first_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What FastStream's nack did: every partition of the batch rewound to its earliest
    record, then a pause. The batch runs under the subscriber's lock, which its stop()
    waits for (a stopping service lets the batch in flight finish)."""
    lock = MultiLock()
    subscriber = type("Subscriber", (), {"running": True, "lock": lock,
                                         "consumer": Rewinds()})()
    held: list[int] = []

    async def not_durable(records: tuple[ConsumerRecord, ...]) -> bool:
        held.append(lock.qsize)
        return False

    paused: list[float] = []

    async def pause(seconds: float) -> None:
        paused.append(seconds)

    monkeypatch.setattr(runtime.asyncio, "sleep", pause)
    consume_directly(subscriber, not_durable)
    await subscriber.consume_one((record(0, 12), record(1, 40), record(0, 13), record(1, 41)))
    assert sorted(subscriber.consumer.seeks) == [(TopicPartition(TOPIC, 0), 12),
                                                 (TopicPartition(TOPIC, 1), 40)]
    assert held == [1] and lock.qsize == 0 and paused == [2.0]
    # A stopped subscriber takes no batch.
    subscriber.running = False
    await subscriber.consume_one((record(0, 14),))
    assert held == [1]


async def test_a_batchs_after_commit_steps_run_once_and_only_for_the_attempt_that_committed(
        engine: Any) -> None:
    """`Incoming.after_commit` (notify hands its mail rows over this way, ADR 4): the first
    attempt's steps are dropped with its rolled-back transaction; the retry's run once it
    committed, before the commit listener."""
    attempts = itertools.count(1)
    fails = [ConnectionResetError("the server went away mid-batch")]
    heard: list[str] = []

    async def handler(conn: Any, items: list[Incoming]) -> dict[int, str]:
        attempt = next(attempts)
        await conn.execute(sa.text("SELECT 1"))
        items[0].after_commit.append(lambda: heard.append(f"step of attempt {attempt}"))
        if fails:
            raise fails.pop()
        return {}

    consumer = BatchConsumer(service="test", engine=engine, handler=handler,
                             expected=AssessmentResultSubmitted,
                             on_committed=lambda wrote: heard.append("committed"))
    await consumer.apply([record(), record()])
    assert heard == ["step of attempt 2", "committed"]
    await consumer.close()
