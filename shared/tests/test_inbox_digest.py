"""A conflicting duplicate is refused visibly (issue 13, item 2): the inbox keeps a digest of
what each ce_id said, so a record reusing a seen ce_id for a different payload becomes a
dead letter with the reason, while a redelivery of the same event stays a silent no-op (and
so does any record whose id was recorded before digests were kept). The shared consumer
loop against a real PostgreSQL (the root conftest's `handler_db`)."""

from __future__ import annotations

import hashlib
import importlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from microcred_shared.consumer import BatchConsumer, Incoming
from microcred_shared.contract.cloudevents import Envelope
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.contract.topics import dlq
from microcred_shared.db import SHARED_TABLES, add_inbox_digest, create_tables
from microcred_shared.outbox import Outgoing, unpack_headers
from microcred_testkit.backbone import result

TOPIC = "microcred.assessment.results.v1"
MIGRATIONS = [create_tables(SHARED_TABLES), add_inbox_digest]
_offsets = iter(range(10**6))


async def echo(conn: Any, items: list[Incoming]) -> dict[int, str]:
    """Publishes one `applied` record per event it applies, carrying its result id."""
    for item in items:
        assert isinstance(item.event, AssessmentResultSubmitted)
        item.outgoing.append(Outgoing("applied", None, [], item.event.result_id.encode()))
    return {}


def record(event: AssessmentResultSubmitted, ce_id: str, *, value: bytes | None = None,
           source: str = "/providers/lakeshore-college") -> ConsumerRecord:
    env = Envelope(id=ce_id, type=event.ce_type, source=source, time=datetime.now(UTC))
    body = value if value is not None else event.model_dump_json().encode()
    return ConsumerRecord(TOPIC, 0, next(_offsets), 0, 0, b"k", body, None, 0, 0,
                          env.headers())


def a_result(**outcome: Any) -> AssessmentResultSubmitted:
    return result("lakeshore-college", "lakeshore-workplace-safety", **(outcome or
                                                                         {"passed": True}))


class Loop:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.conflicts: list[tuple[str, str]] = []

        async def hook(conn: Any, conflicts: list[tuple[Incoming, str]]) -> None:
            self.conflicts += [(i.envelope.id, reason) for i, reason in conflicts]

        self.consumer = BatchConsumer(service="test", engine=engine, handler=echo,
                                      expected=AssessmentResultSubmitted, on_conflict=hook)

    async def feed(self, *records: ConsumerRecord) -> None:
        await self.consumer.apply(records)

    async def published(self) -> tuple[list[str], list[dict[str, str]]]:
        """(result ids applied, dead letters' headers), in order."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT topic, headers, payload FROM outbox ORDER BY id"))).all()
        applied = [bytes(p).decode() for t, _, p in rows if t == "applied"]
        letters = [{k: (v or b"").decode() for k, v in unpack_headers(h)}
                   for t, h, _ in rows if t == dlq(TOPIC)]
        return applied, letters


@pytest.fixture
async def loop(handler_db: Any) -> Loop:
    return Loop(await handler_db(MIGRATIONS))


async def test_a_redelivery_of_the_same_event_is_a_silent_no_op(loop: Loop) -> None:
    event, ce_id = a_result(), str(uuid.uuid4())
    await loop.feed(record(event, ce_id))
    await loop.feed(record(event, ce_id))
    # Re-serialized (another key order and spacing) is still the same event.
    reordered = json.dumps(dict(reversed(json.loads(event.model_dump_json()).items())),
                           indent=2).encode()
    await loop.feed(record(event, ce_id, value=reordered))
    applied, letters = await loop.published()
    assert applied == [event.result_id] and letters == [] and loop.conflicts == []


async def test_the_same_ce_id_with_a_different_payload_is_dead_lettered_with_the_reason(
        loop: Loop) -> None:
    first, ce_id = a_result(), str(uuid.uuid4())
    other = a_result(passed=False)
    await loop.feed(record(first, ce_id))
    await loop.feed(record(other, ce_id), record(a_result(), str(uuid.uuid4())))
    applied, [letter] = await loop.published()
    assert len(applied) == 2 and applied[0] == first.result_id
    assert other.result_id not in applied  # the batch went on without it
    assert letter["dlq_reason"] == (f"ce_id '{ce_id}' was already used for a different "
                                    "payload; a new event needs a new ce_id")
    assert letter["ce_id"] == ce_id and letter["dlq_topic"] == TOPIC
    assert loop.conflicts == [(ce_id, letter["dlq_reason"])]
    assert loop.consumer.dead_lettered == 1


async def test_another_source_reusing_a_ce_id_is_refused_too(loop: Loop) -> None:
    event, ce_id = a_result(), str(uuid.uuid4())
    await loop.feed(record(event, ce_id))
    await loop.feed(record(event, ce_id, source="/providers/coast-mountain-university"))
    applied, [letter] = await loop.published()
    assert applied == [event.result_id] and "already used" in letter["dlq_reason"]


async def test_within_one_batch_the_first_copy_applies_and_a_different_one_is_refused(
        loop: Loop) -> None:
    first, other, ce_id = a_result(), a_result(), str(uuid.uuid4())
    await loop.feed(record(first, ce_id), record(first, ce_id), record(other, ce_id))
    applied, [letter] = await loop.published()
    assert applied == [first.result_id]
    assert "already used for a different payload" in letter["dlq_reason"]


async def test_an_id_recorded_before_digests_were_kept_stays_a_silent_no_op(
        handler_db: Any) -> None:
    """A database from before: its inbox has no digest column, then the new step runs."""
    engine = await handler_db([])
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "CREATE TABLE inbox (topic varchar NOT NULL, ce_id varchar NOT NULL, "
            "received_at timestamptz NOT NULL, PRIMARY KEY (topic, ce_id))"))
        await conn.execute(sa.text("INSERT INTO inbox VALUES (:t, 'old-id', now())"),
                           {"t": TOPIC})
        await create_tables(SHARED_TABLES)(conn)  # the other shared tables; inbox is kept
        await add_inbox_digest(conn)
        await add_inbox_digest(conn)  # idempotent
    loop = Loop(engine)
    await loop.feed(record(a_result(), "old-id"))
    assert await loop.published() == ([], [])
    async with engine.connect() as conn:
        [digest] = (await conn.execute(sa.text(
            "SELECT digest FROM inbox WHERE ce_id = 'old-id'"))).scalars()
    assert digest is None


@pytest.mark.parametrize("module", ["microcred_assessment.models",
                                    "microcred_issuance.migrations",
                                    "microcred_notify.models",
                                    "microcred_registry.migrations"])
async def test_every_service_keeps_digests_after_its_migrations(handler_db: Any,
                                                                module: str) -> None:
    migrations = importlib.import_module(module).MIGRATIONS
    assert add_inbox_digest in migrations[1:]  # a step of its own: deployed databases run it
    engine = await handler_db(migrations)
    loop = Loop(engine)
    event, ce_id = a_result(), str(uuid.uuid4())
    await loop.feed(record(event, ce_id))
    await loop.feed(record(a_result(), ce_id))
    applied, [letter] = await loop.published()
    assert applied == [event.result_id] and "already used" in letter["dlq_reason"]


async def test_an_id_recorded_by_the_code_before_an_upgrade_is_still_recognised(
        loop: Loop) -> None:
    """Inbox rows written before an upgrade hold the digest that code computed: SHA-256 of
    type, source and `model_dump_json()` (issue 13 to issue 12 wave 18). Wave 18 computes
    it more cheaply, not differently: a redelivery after the upgrade — as sent, or
    re-serialised — is still a silent no-op, and another payload under the id is still
    refused."""
    event, ce_id = a_result(), str(uuid.uuid4())
    source = "/providers/lakeshore-college"
    said = f"{event.ce_type}\n{source}\n".encode() + event.model_dump_json().encode()
    async with loop.engine.begin() as conn:  # as the old consumer left it
        await conn.execute(sa.text(
            "INSERT INTO inbox (topic, ce_id, digest, received_at) VALUES (:t, :c, :d, now())"),
            {"t": TOPIC, "c": ce_id, "d": hashlib.sha256(said).digest()})
    reordered = json.dumps(dict(reversed(json.loads(event.model_dump_json()).items())),
                           indent=1, ensure_ascii=True).encode()
    await loop.feed(record(event, ce_id))
    await loop.feed(record(event, ce_id, value=reordered))
    assert await loop.published() == ([], [])
    await loop.feed(record(a_result(passed=False), ce_id))
    applied, [letter] = await loop.published()
    assert applied == [] and letter["ce_id"] == ce_id
    assert "already used for a different payload" in letter["dlq_reason"]
