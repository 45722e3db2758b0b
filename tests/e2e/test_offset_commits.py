"""Coalesced offset commits on the real broker (ADR 2): a subscription commits the offsets
of batches whose transaction has committed - explicit offsets, never the consumer's
position - at most once per interval, and at once when a rebalance takes partitions away or
the consumer stops. A crash between a batch's transaction and the commit loses nothing and
doubles nothing: the records come again and the inbox drops them."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from microcred_devstack.kafka import create_topics
from microcred_shared.consumer import Incoming
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import Envelope, encode
from microcred_shared.contract.events import AssessmentResultSubmitted, learner_key
from microcred_shared.db import SHARED_TABLES, create_tables
from microcred_shared.runtime import ServiceRuntime
from microcred_shared.settings import ServiceSettings
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result

pytestmark = pytest.mark.integration
GROUP = f"microcred-issuance.{topics.DECISIONS}"  # issuance's subscription to decisions


class Subscription:
    """One in-process subscription of a ServiceRuntime on a fresh topic of the real broker,
    its handler held at will."""

    def __init__(self, bb: Any, topic: str, rt: ServiceRuntime) -> None:
        self.bb, self.topic, self.rt = bb, topic, rt
        self.group = f"{rt.settings.consumer_group}.{topic}"
        self.hold = asyncio.Event()
        self.hold.set()
        self.held = asyncio.Event()  # a batch is waiting in the handler
        self.seen: Counter[str] = Counter()  # ce_ids the handler applied
        self.producer = AIOKafkaProducer(bootstrap_servers=bb.bootstrap, acks="all")

    async def handler(self, conn: Any, items: list[Incoming]) -> dict[int, str]:
        if not self.hold.is_set():
            self.held.set()
            await self.hold.wait()
        self.seen.update(i.envelope.id for i in items)
        return {}

    async def send(self, n: int) -> None:
        for _ in range(n):
            event = result("lakeshore-college", "lakeshore-workplace-safety",
                           who=learner(uuid.uuid4().hex[:6]), passed=True)
            env = Envelope(id=str(uuid.uuid4()), type=event.ce_type, source="/providers/x",
                           time=datetime.now(UTC))
            await self.producer.send(self.topic, encode(event), key=event.key(),
                                     headers=env.headers())
        await self.producer.flush()

    async def applied(self) -> int:
        return self.rt.consumers[self.topic].applied

    async def committed(self) -> int:
        """The group's committed offsets, summed over the topic's partitions."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bb.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group)
        finally:
            await admin.close()
        return sum(o.offset for tp, o in offsets.items() if tp.topic == self.topic
                   and o.offset >= 0)


@pytest.fixture
async def subscription(backbone: Any, handler_db: Any, monkeypatch: pytest.MonkeyPatch,
                       request: pytest.FixtureRequest) -> Any:
    partitions, interval_ms = request.param
    topic = f"microcred.commits-{uuid.uuid4().hex[:8]}.v1"
    await create_topics(backbone.bootstrap, [topic], partitions=partitions)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", backbone.bootstrap)
    monkeypatch.setenv("MICROCRED_COMMIT_INTERVAL_MS", str(interval_ms))
    rt = ServiceRuntime(ServiceSettings(), [])
    rt.engine = await handler_db([create_tables(SHARED_TABLES)])
    sub = Subscription(backbone, topic, rt)
    rt._register(topic, sub.handler, AssessmentResultSubmitted, None)
    await sub.producer.start()
    await rt.broker.start()
    try:
        yield sub
    finally:
        sub.hold.set()
        await rt.broker.stop()
        await sub.producer.stop()


@pytest.mark.parametrize("subscription", [(1, 3000)], indirect=True)
async def test_a_commit_names_the_records_made_durable_not_the_consumers_position(
        subscription: Subscription) -> None:
    sub = subscription
    await sub.send(5)
    assert await eventually(sub.applied, lambda n: n >= 5, timeout=60, interval=0.05) == 5
    # Their commit is due within 3 s. Meanwhile the next records reach the handler, which
    # does not finish: the consumer's position is past them when the commit goes out.
    sub.hold.clear()
    await sub.send(5)
    await asyncio.wait_for(sub.held.wait(), 60)
    consumer = sub.rt.subscribers[sub.topic].consumer
    assert await consumer.position(TopicPartition(sub.topic, 0)) > 5
    assert await eventually(sub.committed, lambda n: n > 0, timeout=10) == 5
    await asyncio.sleep(3.5)
    assert await sub.committed() == 5

    sub.hold.set()
    assert await eventually(sub.committed, lambda n: n == 10, timeout=30) == 10
    assert sum(sub.seen.values()) == 10


@pytest.mark.parametrize("subscription", [(8, 600_000)], indirect=True)
async def test_durable_offsets_wait_for_the_interval_and_a_rebalance_commits_them_first(
        subscription: Subscription, backbone: Any) -> None:
    sub = subscription
    for _ in range(3):  # several batches
        await sub.send(10)
        await asyncio.sleep(0.3)
    assert await eventually(sub.applied, lambda n: n >= 30, timeout=60) == 30
    await asyncio.sleep(0.5)
    assert await sub.committed() == 0  # durable, not yet committed: the interval is 10 min
    assert sub.rt.commits[sub.topic].requests == 0

    # A second member joins: before the partitions are shared out, the first commits what
    # it made durable, in one request - so the newcomer re-reads none of it.
    other = AIOKafkaConsumer(sub.topic, bootstrap_servers=backbone.bootstrap,
                             group_id=sub.group, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    await other.start()
    try:
        read = 0
        for _ in range(30):
            got = await other.getmany(timeout_ms=1000)
            read += sum(len(v) for v in got.values())
            if other.assignment():
                break
        assert other.assignment(), "the newcomer was given no partition"
        got = await other.getmany(timeout_ms=2000)
        read += sum(len(v) for v in got.values())
        assert read == 0, "records done before were read again"
        assert await sub.committed() == 30
        assert sub.rt.commits[sub.topic].requests == 1
    finally:
        await other.stop()
    assert set(sub.seen.values()) == {1}


@pytest.mark.parametrize("subscription", [(8, 600_000)], indirect=True)
async def test_a_stopping_consumer_commits_what_it_made_durable(
        subscription: Subscription) -> None:
    sub = subscription
    await sub.send(20)
    assert await eventually(sub.applied, lambda n: n >= 20, timeout=60) == 20
    assert await sub.committed() == 0
    await sub.rt.broker.stop()
    assert await sub.committed() == 20


async def _lag(bb: Any, group: str, topic: str) -> int:
    """Records of `topic` that `group` has not committed yet (log end - committed; a
    partition without a commit counts from its start)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bb.bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bb.bootstrap, enable_auto_commit=False)
    await admin.start()
    await probe.start()
    try:
        [described] = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        assert tps, f"{topic} has no partitions"
        committed = {tp: o.offset for tp, o in
                     (await admin.list_consumer_group_offsets(group)).items()}
        ends = await probe.end_offsets(tps)
        return sum(ends[tp] - max(committed.get(tp, 0), 0) for tp in tps)
    finally:
        await probe.stop()
        await admin.close()


async def test_issuance_killed_after_its_transactions_but_before_the_commit_loses_and_doubles_nothing(  # noqa: E501
        backbone: Any) -> None:
    """The window the coalesced commit opens, made wide: issuance commits offsets only every
    10 minutes, applies a whole stream (credentials issued, learners mailed), and is
    SIGKILLed with none of it committed. Restarted, it reads the stream again: every record
    is a no-op, no learner gets a second credential or a second mail."""
    stack, env = backbone.stack, backbone.env
    stack.restart_service("issuance", {**env, "MICROCRED_COMMIT_INTERVAL_MS": "600000"},
                          timeout=120)
    try:
        # A graceful stop commits what was durable (the restart above): nothing pending.
        assert await eventually(lambda: _lag(backbone, GROUP, topics.DECISIONS), lambda n: n == 0,
                                timeout=30) == 0
        run = f"commit-{uuid.uuid4().hex[:6]}"
        events, passed = [], set()
        for i in range(40):
            who = learner(f"{run}-{i}", domain="commits.example")
            events.append(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                                 who=who, score=95 if i % 4 else 30))
            if i % 4:
                passed.add(who.email)
        async with ProviderPublisher(backbone.bootstrap) as kafka:
            await kafka.publish_many(events)

        async def delivered() -> int:
            return await backbone.scalar(
                "notify", "SELECT count(*) FROM notifications WHERE status = 'delivered' "
                "AND recipient LIKE $1", f"learner{run}-%")

        assert await eventually(delivered, lambda n: n >= len(passed), timeout=120) \
            == len(passed)
        pending = await _lag(backbone, GROUP, topics.DECISIONS)
        assert pending >= len(passed), "issuance committed before its interval"
    finally:
        stack.kill_service("issuance", signal.SIGKILL)
        await asyncio.sleep(1.0)
        stack.start_service("issuance", env, timeout=120)

    # Read again from the last commit, applied as no-ops, then committed.
    assert await eventually(lambda: _lag(backbone, GROUP, topics.DECISIONS), lambda n: n == 0,
                            timeout=90) == 0
    await asyncio.sleep(3.0)  # let any would-be duplicate surface before counting
    assert await delivered() == len(passed)
    keys = [learner_key(e) for e in passed]
    counts = json.loads(await backbone.scalar(
        "registry", "SELECT json_object_agg(learner_key, n) FROM (SELECT learner_key, "
        "count(*) AS n FROM credentials WHERE learner_key = ANY($1) GROUP BY learner_key) t",
        keys) or "{}")
    assert len(counts) == len(passed) and set(counts.values()) == {1}
    mails = [m for m in backbone.smtp.messages if str(m["To"]).startswith(f"learner{run}-")]
    assert sorted(str(m["To"]) for m in mails) == sorted(passed)
