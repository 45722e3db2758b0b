"""What the consumer loop and the outbox relay send PostgreSQL (issue 12): a batch of new
events costs one inbox statement (a redelivery a second one, for the stored digests), and a
relay's claims commit without waiting for the disk, on a connection it gives back to the
pool as it found it. Against a real PostgreSQL (the root conftest's `handler_db`)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from microcred_shared import db, outbox
from microcred_shared.consumer import BatchConsumer, Incoming
from microcred_shared.contract.cloudevents import Envelope
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.db import SHARED_TABLES, add_inbox_digest, add_outbox_shard, create_tables
from microcred_shared.outbox import OutboxRelay, Outgoing
from microcred_testkit.backbone import result
from microcred_testkit.relay import AckingProducer

TOPIC = "microcred.assessment.results.v1"
MIGRATIONS = [create_tables(SHARED_TABLES), add_inbox_digest, add_outbox_shard]
_offsets = itertools.count()


class Sent:
    """Every statement the engine's connections send: SQLAlchemy's, and the driver's own
    (BEGIN, COMMIT), which SQLAlchemy's events do not see."""

    def __init__(self, engine: Any) -> None:
        self.sql: list[str] = []
        self._watched: set[int] = set()
        sa.event.listen(engine.sync_engine.pool, "checkout", self._watch)
        sa.event.listen(engine.sync_engine, "before_cursor_execute",
                        lambda conn, cursor, sql, *rest: self.sql.append(" ".join(sql.split())))

    def _watch(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = dbapi_connection.driver_connection  # the asyncpg connection
        if id(raw) not in self._watched:
            self._watched.add(id(raw))
            raw.add_query_logger(lambda q: self.sql.append(q.query))

    def kinds(self) -> Counter[str]:
        """The statements by what they do: BEGIN, COMMIT, `INSERT INTO inbox`, ... (the
        driver logs its own after SQLAlchemy's events, so the order is not compared)."""
        out: Counter[str] = Counter()
        for sql in self.sql:
            words = sql.rstrip(";").split()
            out[" ".join(words[:3]) if words[0] in ("INSERT", "DELETE") else
                " ".join(words[:1] + [w for w in words if w in ("inbox", "outbox")][:1])] += 1
        return out

    def inbox(self) -> list[str]:
        return [sql for sql in self.sql if "INTO inbox" in sql]


async def echo(conn: Any, items: list[Incoming]) -> dict[int, str]:
    for item in items:
        item.outgoing.append(Outgoing("applied", b"k", [], item.envelope.id.encode()))
    return {}


def record(ce_id: str | None = None) -> ConsumerRecord:
    event: AssessmentResultSubmitted = result("lakeshore-college",
                                              "lakeshore-workplace-safety", passed=True)
    env = Envelope(id=ce_id or str(uuid.uuid4()), type=event.ce_type,
                   source="/providers/lakeshore-college", time=datetime.now(UTC))
    return ConsumerRecord(TOPIC, 0, next(_offsets), 0, 0, b"k",
                          event.model_dump_json().encode(), None, 0, 0, env.headers())


@pytest.fixture
async def engine(handler_db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(db, "IDLE_CHECK", 3600.0)  # no pool check's BEGIN in the counts
    return await handler_db(MIGRATIONS)


async def test_a_batch_of_new_events_costs_one_inbox_statement(engine: Any) -> None:
    """Before: the inbox statement also read `inbox` back for every row, joined to what it
    had just inserted, to find the digests of ids seen before - which a batch of new events
    has none of. Now that read is a second statement, sent only for a redelivery."""
    consumer = BatchConsumer(service="test", engine=engine, handler=echo,
                             expected=AssessmentResultSubmitted)
    warm = [record() for _ in range(3)]  # the driver looks its types up once per connection
    await consumer.apply(warm)
    await consumer.apply(warm[:1] + [record()])
    batch = [record() for _ in range(20)]
    sent = Sent(engine)
    await consumer.apply(batch)
    await asyncio.sleep(0.1)  # the driver's query log is written by the event loop
    assert sent.kinds() == Counter(["BEGIN", "INSERT INTO inbox", "INSERT INTO outbox",
                                    "COMMIT"]), sent.sql
    assert "JOIN" not in sent.inbox()[0]  # the rows from unnest, no read-back
    assert consumer.applied == 24
    # A redelivery of half of them with ten new ones: the seen ids' digests are read, the
    # redelivered events are dropped silently, the new ones applied.
    sent.sql.clear()
    await consumer.apply(batch[::2] + [record() for _ in range(10)])
    await asyncio.sleep(0.1)
    assert sent.kinds() == Counter(["BEGIN", "INSERT INTO inbox", "SELECT inbox",
                                    "INSERT INTO outbox", "COMMIT"]), sent.sql
    assert consumer.applied == 34 and consumer.dead_lettered == 0
    # ... and one that reuses a seen ce_id for another event is still refused.
    reused = record(ce_id=dict(batch[1].headers)["ce_id"].decode())
    await consumer.apply([reused])
    assert consumer.applied == 34 and consumer.dead_lettered == 1
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT topic FROM outbox"))).scalars().all()
    assert sorted(rows) == ["applied"] * 34 + [f"{TOPIC}.dlq"]


class Producer(AckingProducer):
    """Acknowledges at once; asks the relay's own session how its claim will commit."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[str] = []
        self.conn: Any = None

    async def took(self, records: list[Any]) -> None:
        # On the relay's own session, as its cycle runs (straight on the driver's connection)
        self.commits.append(await (await self.conn.get_raw_connection()).driver_connection
                            .fetchval("SHOW synchronous_commit"))


class Relay(OutboxRelay):
    async def drain_once(self, conn: Any) -> int:
        self._producer.conn = conn  # type: ignore[attr-defined]
        return await super().drain_once(conn)


async def test_a_relays_claims_do_not_wait_for_the_disk_and_its_connection_goes_back_as_it_was(
        engine: Any) -> None:
    producer = Producer()
    relay = Relay(engine, producer, name=f"sync-{uuid.uuid4()}",  # type: ignore[arg-type]
                  poll_interval=0.05)
    async with engine.begin() as conn:
        await outbox.write(conn, [Outgoing("t", b"k", [], b"%d" % i) for i in range(5)])
    task = asyncio.create_task(relay.run())
    for _ in range(200):
        if len(producer.sent) == 5:
            break
        await asyncio.sleep(0.05)
    relay.stop()
    await task
    assert producer.sent == [b"%d" % i for i in range(5)]
    assert set(producer.commits) == {"off"}  # the relay's session, where its cycles run
    # Every pooled connection (the relay's among them) commits synchronously again.
    pool = engine.sync_engine.pool
    conns = [await engine.connect() for _ in range(pool.checkedin())]
    try:
        for conn in conns:
            assert (await conn.execute(sa.text("SHOW synchronous_commit"))).scalar() == "on"
    finally:
        for conn in conns:
            await conn.close()
    assert pool.checkedin() >= 1


async def test_a_relays_cycle_is_one_statement_and_deletes_only_what_the_broker_acknowledged(
        engine: Any) -> None:
    """Before: BEGIN, a `DELETE ... RETURNING` of the oldest rows and, once the broker had
    acknowledged them, COMMIT - three round trips per claim. Now one statement deletes what
    the previous cycle's sends had acknowledged and reads the next rows."""
    async def write(*payloads: bytes) -> None:
        async with engine.begin() as conn:
            await outbox.write(conn, [Outgoing("t", b"k", [], p) for p in payloads])

    async def left() -> list[bytes]:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(
                "SELECT payload FROM outbox ORDER BY id"))).scalars())

    producer = AckingProducer()
    relay = OutboxRelay(engine, producer, name=f"cycle-{uuid.uuid4()}")  # type: ignore[arg-type]
    relay.shards = frozenset(range(db.SHARDS))  # as if balanced (no other relay here)
    sent = Sent(engine)
    async with engine.connect() as conn:
        assert await relay.drain_once(conn) == 0  # the driver looks its types up once
        await write(b"1", b"2", b"3")
        await asyncio.sleep(0.1)
        sent.sql.clear()
        assert await relay.drain_once(conn) == 3
        await asyncio.sleep(0.1)  # the driver's query log is written by the event loop
        assert len(sent.sql) == 1 and "BEGIN" not in sent.sql and "COMMIT" not in sent.sql
        assert producer.sent == [b"1", b"2", b"3"]
        assert await left() == [b"1", b"2", b"3"]  # acknowledged: the next cycle deletes them
        await write(b"4", b"5")
        await asyncio.sleep(0.1)
        sent.sql.clear()
        assert await relay.drain_once(conn) == 2
        await asyncio.sleep(0.1)
        assert len(sent.sql) == 1, sent.sql
        assert await left() == [b"4", b"5"]
        # Sends the broker does not acknowledge: their rows stay for the next try.
        producer.failing = "*"
        await write(b"6")
        with pytest.raises(RuntimeError):
            await relay.drain_once(conn)
        assert await left() == [b"6"]
        producer.failing = set()
        assert await relay.drain_once(conn) == 1
        assert await relay.drain_once(conn) == 0
    assert producer.sent == [b"1", b"2", b"3", b"4", b"5", b"6"]
    assert await left() == []


async def test_a_handlers_statements_join_the_consumers_transaction_without_a_begin_of_their_own(
        engine: Any) -> None:
    """The consumer loop sends BEGIN, its inbox and outbox statements and COMMIT on the
    driver's connection; the handler's SQLAlchemy statements run inside that transaction
    (no second BEGIN, committed and rolled back with the rest)."""
    async def marks(conn: Any, items: list[Incoming]) -> dict[int, str]:
        await conn.execute(sa.text(
            "INSERT INTO inbox (topic, ce_id, received_at) "
            "SELECT 'handler', unnest(CAST(:ids AS text[])), now()"),
            {"ids": [i.envelope.id for i in items]})
        return await echo(conn, items)

    consumer = BatchConsumer(service="test", engine=engine, handler=marks,
                             expected=AssessmentResultSubmitted)
    await consumer.apply([record() for _ in range(3)])  # the driver looks its types up once
    sent = Sent(engine)
    await consumer.apply([record() for _ in range(5)])
    await asyncio.sleep(0.1)
    assert sent.kinds() == Counter({"BEGIN": 1, "INSERT INTO inbox": 2, "INSERT INTO outbox": 1,
                                    "COMMIT": 1}), sent.sql

    async def count(topic: str) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text(
                "SELECT count(*) FROM inbox WHERE topic = :t"), {"t": topic})).scalar())

    assert await count("handler") == 8
    # Rolled back together, and the connection goes back to the pool in no transaction.
    async with engine.connect() as conn:
        with pytest.raises(RuntimeError):
            async with db.driver_transaction(conn) as driver:
                await driver.execute("INSERT INTO inbox (topic, ce_id, received_at) "
                                     "VALUES ('driver', 'x', now())")
                await conn.execute(sa.text("INSERT INTO inbox (topic, ce_id, received_at) "
                                           "VALUES ('handler', 'y', now())"))
                raise RuntimeError("the handler failed")
        assert not driver.is_in_transaction() and not conn.in_transaction()
    assert await count("driver") == 0 and await count("handler") == 8
    async with engine.connect() as conn:  # SQLAlchemy begins its own transactions again
        await conn.execute(sa.text("INSERT INTO inbox (topic, ce_id, received_at) "
                                   "VALUES ('after', 'z', now())"))
        await conn.commit()
    assert await count("after") == 1
