"""Handler tests: the assessment service's use cases and batch handlers against a real,
migrated PostgreSQL (the root conftest's `handler_db`), no broker. What a handler would
publish is read back from the outbox; what it refuses, from the dead letters there."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_assessment.access.keys import create_key
from microcred_assessment.catalogue.seed import import_seed, load_seed
from microcred_assessment.main import build
from microcred_assessment.models import MIGRATIONS
from microcred_assessment.results.ingest import IngestStore
from microcred_shared.auth import KeyVerifier
from microcred_shared.consumer import BatchConsumer, BatchHandler
from microcred_shared.contract.events import Event
from microcred_shared.projection import LiveCatalog
from microcred_shared.settings import REPO_ROOT

SEED = REPO_ROOT / "deploy" / "seed" / "providers.json"
PROVIDER = "lakeshore-college"  # the provider whose key the `app` fixture's client presents
_offsets = itertools.count()


@dataclass
class Published:
    topic: str
    headers: dict[str, str]
    body: Any  # the JSON payload (a dead letter's is the refused record's own)


class Kit:
    """The database of one test, and what a user of the service would see in it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @staticmethod
    def record(topic: str, event: Event, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
        return record(topic, event, headers)

    async def outbox(self, topic: str | None = None) -> list[Published]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT topic, headers, payload FROM outbox ORDER BY id"))).all()
        out = [Published(t, dict(json.loads(h)), json.loads(p)) for t, h, p in rows]
        return [p for p in out if topic is None or p.topic == topic]

    async def audit(self, action: str | None = None) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT * FROM audit_log ORDER BY recorded_at"))).mappings().all()
        return [dict(r) for r in rows if action is None or r["action"] == action]

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(sa.text(sql), params)).mappings()]

    async def clear_outbox(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM outbox"))

    async def consume(self, handler: BatchHandler, expected: type[Event],
                      records: Sequence[ConsumerRecord]) -> None:
        """One batch through the service's consumer loop, as Kafka would deliver it."""
        await BatchConsumer(service="assessment", engine=self.engine, handler=handler,
                            expected=expected).apply(records)


def record(topic: str, event: Event, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    """A Kafka record carrying `event` with real CloudEvents headers."""
    value = event.model_dump_json().encode()
    return ConsumerRecord(topic=topic, partition=0, offset=next(_offsets), timestamp=0,
                          timestamp_type=0, key=event.key(), value=value, checksum=None,
                          serialized_key_size=-1, serialized_value_size=len(value),
                          headers=headers)


@pytest.fixture
async def kit(handler_db: Any) -> Kit:
    """A fresh assessment database with the seed catalogue imported (as at first start)."""
    engine = await handler_db(MIGRATIONS)
    await import_seed(engine, load_seed(SEED))
    k = Kit(engine)
    await k.clear_outbox()  # the seed's own publications are not what a test looks at
    return k


@pytest.fixture
async def live(kit: Kit) -> LiveCatalog:
    catalog = LiveCatalog(kit.engine)
    await catalog.refresh(force=True)
    return catalog


class Relay:
    """The outbox relay's wake-up, counted: what is written is read back from the outbox."""

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


@pytest.fixture
async def app(kit: Kit, live: LiveCatalog) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The real assessment app, in process, on the test's database: a client presenting
    lakeshore's key, and the app's runtime."""
    app, rt = build()
    rt.engine, rt.catalog = kit.engine, live
    rt.key_verifier, rt.relay = KeyVerifier(kit.engine), Relay()  # type: ignore[assignment]
    rt.ingest = IngestStore(kit.engine, rt.relay.wake)
    secret = await create_key(kit.engine, PROVIDER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a",
                                 headers={"Authorization": f"Bearer {secret}"}) as client:
        yield client, rt
    await rt.ingest.stop()
