"""A subscription whose consumer lost its group coordinator is restarted, and loses nothing.

aiokafka's coordination task can die (aio-libs/aiokafka#796: an assertion when a pattern
subscription sees a new provider topic mid-rebalance; `make demo` hit it). FastStream then
logs "Kafka error occurred" every 5 s and the subscription consumes nothing while the
service looks healthy. On the real broker, this test ends a running consumer's coordination
the way that bug does (the task done with the error it raises) and checks that the runtime's
watchdog restarts the subscription and that the record sent meanwhile is applied."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from microcred_devstack.kafka import create_topics
from microcred_shared.consumer import Incoming
from microcred_shared.contract.cloudevents import Envelope, encode
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.db import SHARED_TABLES, create_tables
from microcred_shared.runtime import ServiceRuntime
from microcred_shared.settings import ServiceSettings
from microcred_testkit.backbone import eventually, learner, result

pytestmark = pytest.mark.integration


async def nothing_to_do(conn, items: list[Incoming]) -> dict[int, str]:
    return {}


async def test_a_consumer_whose_coordination_died_is_restarted_and_loses_nothing(
        backbone, handler_db, monkeypatch):
    topic = f"microcred.watchdog-{uuid.uuid4().hex[:8]}.v1"
    await create_topics(backbone.bootstrap, [topic])
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", backbone.bootstrap)
    rt = ServiceRuntime(ServiceSettings(), [])
    rt.engine = await handler_db([create_tables(SHARED_TABLES)])
    rt._register(topic, nothing_to_do, AssessmentResultSubmitted, None)
    subscriber, consumer = rt.subscribers[topic], rt.consumers[topic]
    producer = AIOKafkaProducer(bootstrap_servers=backbone.bootstrap, acks="all")
    await producer.start()
    await rt.broker.start()
    watchdog = asyncio.create_task(rt.watch_consumers(every=0.5))

    async def send() -> None:
        event = result("lakeshore-college", "lakeshore-workplace-safety",
                       who=learner(uuid.uuid4().hex[:6]), passed=True)
        env = Envelope(id=str(uuid.uuid4()), type=event.ce_type, source="/providers/x",
                       time=datetime.now(UTC))
        await producer.send_and_wait(topic, encode(event), key=event.key(),
                                     headers=env.headers())

    async def applied() -> int:
        return consumer.applied

    try:
        await send()
        assert await eventually(applied, lambda n: n >= 1, timeout=60) == 1

        # What aio-libs/aiokafka#796 leaves behind: coordination over, with this error.
        coordinator = subscriber.consumer._coordinator
        coordinator._coordination_task.cancel()
        died = asyncio.get_running_loop().create_future()
        died.set_exception(KafkaError("Unexpected error during coordination "
                                      "AssertionError()"))
        coordinator._coordination_task = died
        await send()

        assert await eventually(applied, lambda n: n >= 2, timeout=90) == 2

        async def restarted() -> int:
            return rt.restarted_consumers

        # The record may be fetched before the watchdog's round has finished its restart.
        assert await eventually(restarted, lambda n: n >= 1, timeout=30) >= 1
        assert consumer.applied == 2  # nothing doubled by the restart
    finally:
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        await rt.broker.stop()
        await producer.stop()
