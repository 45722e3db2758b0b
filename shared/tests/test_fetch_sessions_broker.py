"""Incremental fetch sessions on the real broker: a consumer in a session reads every record
of its 8 partitions once and in order, through a pause, a rewind and a session the broker
no longer accepts, while its fetches after the first carry only the partitions that moved."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from microcred_devstack.kafka import KafkaNode, create_topics
from microcred_shared.fetch_sessions import SessionFetch, use_fetch_sessions

pytestmark = pytest.mark.integration
TOPIC = "sessions.test"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = KafkaNode(Path(tmp_path_factory.mktemp("kafka"))).start()
    try:
        node.wait_ready()
        yield node.bootstrap
    finally:
        node.stop()


@pytest.fixture
async def consumer(broker: str) -> AsyncIterator[tuple[AIOKafkaConsumer, list[SessionFetch]]]:
    await create_topics(broker, [TOPIC])
    c = AIOKafkaConsumer(TOPIC, bootstrap_servers=broker, group_id="sessions",
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         fetch_max_wait_ms=500)
    await c.start()
    client = use_fetch_sessions(c)
    sent: list[SessionFetch] = []
    send = client.send

    async def recording(node_id: int, request: Any, **kw: Any) -> Any:
        if isinstance(request, SessionFetch):
            sent.append(request)
        return await send(node_id, request, **kw)

    client.send = recording  # type: ignore[method-assign]
    try:
        yield c, sent
    finally:
        await c.stop()


async def publish(broker: str, n: int, start: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(start, start + n):
            await producer.send_and_wait(TOPIC, str(i).encode(), partition=i % 8)
    finally:
        await producer.stop()


async def read(c: AIOKafkaConsumer, seen: dict[int, list[int]], until: int) -> None:
    async with asyncio.timeout(30):
        while sum(map(len, seen.values())) < until:
            for tp, records in (await c.getmany(timeout_ms=200)).items():
                seen[tp.partition] += [int(r.value or b"") for r in records]


async def test_a_session_reads_every_record_once_in_order(
        broker: str, consumer: tuple[AIOKafkaConsumer, list[SessionFetch]]) -> None:
    c, sent = consumer
    seen: dict[int, list[int]] = defaultdict(list)
    for round_ in range(4):  # a few records at a time, as at a low rate
        await publish(broker, 8, start=8 * round_)
        await read(c, seen, until=8 * (round_ + 1))

    # Paused: partition 3 leaves the session; resumed, it comes back where it was.
    tp3 = TopicPartition(TOPIC, 3)
    c.pause(tp3)
    await publish(broker, 16, start=32)
    await read(c, seen, until=32 + 14)
    assert len(seen[3]) == 4
    c.resume(tp3)
    await read(c, seen, until=48)

    # Rewound (a batch that was not durable): read again from there.
    c.seek(TopicPartition(TOPIC, 5), 2)
    await read(c, seen, until=48 + 4)

    # The broker no longer knows the session's epoch: the next fetch opens a new one.
    session = next(iter(c._fetcher._client.sessions.values()))
    session.epoch += 5
    await publish(broker, 8, start=48)
    await read(c, seen, until=60)

    expected = {p: [i for i in range(56) if i % 8 == p] for p in range(8)}
    expected[5] = expected[5][:6] + expected[5][2:]  # partition 5's offsets 2.. came twice
    assert dict(seen) == expected
    incremental = [r for r in sent if r.epoch > 0]
    assert incremental, "no fetch was incremental"
    # a fetch after records on every partition names them all; the others fewer, or none
    assert min(len(r.changed) for r in incremental) < 8
    assert sum(len(r.changed) for r in incremental) < 8 * len(incremental)
    assert sum(1 for r in sent if r.epoch == 0) >= 2  # the first, and after the bad epoch
