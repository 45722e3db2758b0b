"""The consumer loop wakes the outbox relay after a batch's commit only when the batch wrote
outbox rows (issue 12): what a batch wrote is published at once, a batch that wrote nothing
costs the relay no claim transaction. The runtime's own wiring (`ServiceRuntime._register`,
its commit hook) and a real `OutboxRelay` on a real PostgreSQL (the root conftest's
`handler_db`); the relay polls only once a minute here, so only a wake-up makes it claim."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from microcred_shared import outbox
from microcred_shared.consumer import Incoming
from microcred_shared.contract.cloudevents import Envelope
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.db import SHARED_TABLES, add_inbox_digest, add_outbox_shard, create_tables
from microcred_shared.outbox import OutboxRelay, Outgoing
from microcred_shared.runtime import ServiceRuntime
from microcred_shared.settings import ServiceSettings
from microcred_testkit.backbone import result
from microcred_testkit.relay import AckingProducer

TOPIC = "microcred.assessment.results.v1"
MIGRATIONS = [create_tables(SHARED_TABLES), add_inbox_digest, add_outbox_shard]
_offsets = itertools.count()


class Producer(AckingProducer):
    """Takes what the relay sends, as an acknowledging broker would."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def took(self, records: list[Any]) -> None:
        self.arrived.set()


async def publishes(conn: Any, items: list[Incoming]) -> dict[int, str]:
    """Writes one outbox row per event itself, as the services' handlers do."""
    await outbox.write(conn, [Outgoing("published", b"k", [], i.envelope.id.encode())
                              for i in items])
    return {}


async def via_outgoing(conn: Any, items: list[Incoming]) -> dict[int, str]:
    for item in items:
        item.outgoing.append(Outgoing("published", b"k", [], item.envelope.id.encode()))
    return {}


async def writes_nothing(conn: Any, items: list[Incoming]) -> dict[int, str]:
    return {}  # a projection: its own tables only (here: nothing but the inbox)


def record() -> ConsumerRecord:
    event: AssessmentResultSubmitted = result("lakeshore-college",
                                              "lakeshore-workplace-safety", passed=True)
    env = Envelope(id=str(uuid.uuid4()), type=event.ce_type,
                   source="/providers/lakeshore-college", time=datetime.now(UTC))
    return ConsumerRecord(TOPIC, 0, next(_offsets), 0, 0, b"k",
                          event.model_dump_json().encode(), None, 0, 0, env.headers())


class Service:
    """A runtime wired as `ServiceRuntime.start` wires it, minus Kafka: its relay on a
    recording producer, one subscription per handler, the relay's claims counted."""

    def __init__(self, engine: Any) -> None:
        self.rt = ServiceRuntime(ServiceSettings(), MIGRATIONS)
        self.rt.engine = engine
        self.producer = Producer()
        self.rt.relay = OutboxRelay(engine, self.producer, name=f"wake-{uuid.uuid4()}",  # type: ignore[arg-type]
                                    poll_interval=60.0, balance_interval=60.0)
        self.claims = 0

        # The relay's cycles go to the driver's connection directly (no SQLAlchemy event
        # sees them): its query log counts the claims, which read the relay's shards.
        watched: set[int] = set()

        def count(query: Any) -> None:
            if "SELECT id, topic, key, headers, payload FROM outbox" in query.query:
                self.claims += 1

        def watch(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            raw = dbapi_connection.driver_connection
            if id(raw) not in watched:
                watched.add(id(raw))
                raw.add_query_logger(count)

        sa.event.listen(engine.sync_engine.pool, "checkout", watch)

    async def __aenter__(self) -> Service:
        self.task = asyncio.create_task(self.rt.relay.run())  # type: ignore[union-attr]
        # The relay has joined, taken its shards and found the outbox empty: it now sleeps
        # until a wake-up (or a minute).
        for _ in range(100):
            if self.rt.relay and self.rt.relay.shards and self.claims:
                break
            await asyncio.sleep(0.05)
        assert self.claims == 1, "the relay did not start"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.rt.relay is not None
        self.rt.relay.stop()
        await self.task

    async def feed(self, handler: Any, *records: ConsumerRecord) -> None:
        name = f"{TOPIC}.{handler.__name__}"
        if name not in self.rt.consumers:
            self.rt._register(name, handler, AssessmentResultSubmitted, None)
        await self.rt.consumers[name].apply(records)

    async def published_within(self, seconds: float) -> list[bytes]:
        try:
            await asyncio.wait_for(self.producer.arrived.wait(), seconds)
        except TimeoutError:
            pass
        return self.producer.sent


@pytest.fixture
async def engine(handler_db: Any) -> Any:
    return await handler_db(MIGRATIONS)


@pytest.mark.parametrize("handler", [publishes, via_outgoing])
async def test_a_batch_that_wrote_outbox_rows_is_published_at_once(engine: Any,
                                                                   handler: Any) -> None:
    records = [record(), record()]
    async with Service(engine) as service:
        await service.feed(handler, *records)
        sent = await service.published_within(5.0)  # the relay's own poll: a minute
        assert sent == [_id(r) for r in records]
        assert service.claims >= 2  # the wake-up's claim


async def test_a_batch_that_wrote_nothing_does_not_wake_the_relay(engine: Any) -> None:
    async with Service(engine) as service:
        for _ in range(5):
            await service.feed(writes_nothing, record(), record())
        await asyncio.sleep(1.0)  # a woken relay claims within milliseconds
        assert service.claims == 1  # the one at start: no claim statement for the batches
        assert service.producer.sent == []
        async with engine.connect() as conn:  # the batches were applied all the same
            assert (await conn.execute(sa.text("SELECT count(*) FROM inbox"))).scalar() == 10
        # ... and the next batch that does write is published at once.
        last = record()
        await service.feed(publishes, last)
        assert await service.published_within(5.0) == [_id(last)]


async def test_a_dead_letter_alone_wakes_the_relay(engine: Any) -> None:
    """A batch whose only outbox row is a dead letter (an undecodable record)."""
    bad = ConsumerRecord(TOPIC, 0, next(_offsets), 0, 0, b"k", b"{not json", None, 0, 0,
                         record().headers)
    async with Service(engine) as service:
        await service.feed(writes_nothing, bad)
        assert await service.published_within(5.0) == [b"{not json"]


def _id(r: ConsumerRecord) -> bytes:
    return dict(r.headers)["ce_id"]


async def test_a_topic_listener_hears_only_its_own_subscriptions_commits(engine: Any) -> None:
    """Issuance reloads its catalogue after the catalogue topics' batches, not after every
    decisions batch (a catalogue query per batch for nothing)."""
    heard: list[str] = []
    async with Service(engine) as service:
        service.rt.after_commit(f"{TOPIC}.writes_nothing", lambda: heard.append("catalogue"))
        service.rt.commit_listeners.append(lambda: heard.append("any"))
        await service.feed(publishes, record())
        assert heard == ["any"]
        await service.feed(writes_nothing, record())
        assert heard == ["any", "any", "catalogue"]
