"""Two outbox relays of one service on the real PostgreSQL and Kafka: only one publishes at
a time (one learner's events keep their order), and the other takes over when it stops or
its database session dies (ADR 2)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from microcred_devstack import create_topics
from microcred_shared import outbox
from microcred_shared.db import SHARED_TABLES, create_tables, ensure_database, make_engine, migrate
from microcred_shared.outbox import OutboxRelay, Outgoing, make_producer
from microcred_shared.settings import database_url_for
from microcred_testkit.backbone import eventually

pytestmark = pytest.mark.integration


class Watched:
    """The real producer, noting for every record which relay sent it and whether the
    other relay claimed to be publishing at that moment."""

    def __init__(self, real: Any, name: str, sent: list[tuple[str, bytes, bool]]) -> None:
        self.real, self.name, self.sent = real, name, sent
        self.other: OutboxRelay | None = None

    async def send(self, topic: str, **kwargs: Any) -> Any:
        assert self.other is not None
        self.sent.append((self.name, kwargs["value"], self.other.active))
        return await self.real.send(topic, **kwargs)


async def scratch(bb: Any) -> Any:
    server = bb.stack.database_url
    name = f"microcred_relaytest_{uuid.uuid4().hex[:8]}"
    await ensure_database(server, name)
    engine = make_engine(database_url_for(server, name))
    await migrate(engine, [create_tables(SHARED_TABLES)])
    return engine


async def write(engine: Any, topic: str, numbers: range) -> None:
    async with engine.begin() as conn:
        await outbox.write(conn, [Outgoing(topic, b"learner-1", [("n", str(n).encode())],
                                           str(n).encode()) for n in numbers])


async def received(bb: Any, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bb.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[bytes] = []
    try:
        while len(out) < count:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out += [r.value for r in records]
    finally:
        await consumer.stop()
    return out


async def pair(bb: Any, engine: Any, sent: list[tuple[str, bytes, bool]]) -> tuple[
        list[OutboxRelay], list[Any], list[asyncio.Task[None]]]:
    """Relay a starts first and becomes the active one; then relay b starts beside it."""
    producers = [make_producer(bb.bootstrap, f"relaytest-{n}") for n in "ab"]
    watched = [Watched(p, n, sent) for p, n in zip(producers, "ab", strict=True)]
    relays = [OutboxRelay(engine, w, name="relaytest", poll_interval=0.05,  # type: ignore[arg-type]
                          standby_interval=0.1) for w in watched]
    watched[0].other, watched[1].other = relays[1], relays[0]
    for p in producers:
        await p.start()
    tasks = [asyncio.create_task(relays[0].run())]
    assert await eventually(state(relays[0]), bool, timeout=10)
    tasks.append(asyncio.create_task(relays[1].run()))
    return relays, producers, tasks


def state(relay: OutboxRelay) -> Any:
    async def probe() -> bool:
        return relay.active
    return probe


async def published(sent: list[tuple[str, bytes, bool]]) -> int:
    return len(sent)


async def close(relays: list[OutboxRelay], producers: list[Any],
                tasks: list[asyncio.Task[None]], engine: Any) -> None:
    for relay in relays:
        relay.stop()
    await asyncio.gather(*tasks)
    for p in producers:
        await p.stop()
    await engine.dispose()


@pytest.fixture
async def topic(backbone: Any) -> str:
    name = f"relaytest.{uuid.uuid4().hex[:8]}"
    await create_topics(backbone.bootstrap, [name], partitions=1)
    return name


async def test_two_relays_of_one_service_never_publish_at_once_and_the_second_takes_over(
        backbone: Any, topic: str) -> None:
    engine = await scratch(backbone)
    sent: list[tuple[str, bytes, bool]] = []
    relays, producers, tasks = await pair(backbone, engine, sent)
    try:
        for start in range(0, 300, 30):  # rows keep arriving while both relays run
            await write(engine, topic, range(start, start + 30))
            await asyncio.sleep(0.02)
        await eventually(lambda: published(sent), lambda n: n >= 300, timeout=30)
        assert {who for who, _, _ in sent} == {"a"}, "the standby relay published"
        assert not relays[1].active

        relays[0].stop()
        await tasks[0]
        await write(engine, topic, range(300, 400))
        await eventually(lambda: published(sent), lambda n: n >= 400, timeout=30)
        assert relays[1].active, "the standby relay did not take over"
        assert [who for who, _, _ in sent] == ["a"] * 300 + ["b"] * 100
        assert not any(other_active for _, _, other_active in sent)
        # One learner's records arrive in the order they were written, across the hand-over.
        assert await received(backbone, topic, 400) == [str(n).encode() for n in range(400)]
    finally:
        await close(relays, producers, tasks, engine)


async def test_the_standby_relay_takes_over_when_the_active_relays_session_dies(
        backbone: Any, topic: str) -> None:
    engine = await scratch(backbone)
    sent: list[tuple[str, bytes, bool]] = []
    relays, producers, tasks = await pair(backbone, engine, sent)
    try:
        await write(engine, topic, range(0, 50))
        await eventually(lambda: published(sent), lambda n: n >= 50, timeout=30)
        async with engine.connect() as conn:  # what a crashed process leaves: no session
            killed = (await conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ))).scalars().all()
        assert killed == [True]
        assert await eventually(state(relays[1]), bool, timeout=20), "no take-over"
        await write(engine, topic, range(50, 80))
        await eventually(lambda: published(sent), lambda n: n >= 80, timeout=30)
        assert not relays[0].active
        assert [who for who, _, _ in sent][50:] == ["b"] * 30
    finally:
        await close(relays, producers, tasks, engine)


class Broken:
    """A producer in the state aiokafka leaves an idempotent one in after it lost track of
    its sequence numbers: every send fails."""

    def __init__(self) -> None:
        self.stopped = False

    async def send(self, topic: str, **kwargs: Any) -> Any:
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
        assert await received(backbone, topic, 5) == [str(n).encode() for n in range(5)]
        assert broken.stopped and len(fresh) == 1 and relay.producer is fresh[0]
    finally:
        relay.stop()
        await task
        for p in fresh:
            await p.stop()
        await engine.dispose()
