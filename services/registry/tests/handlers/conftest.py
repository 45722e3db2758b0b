"""What the registry's handler tests share: a fresh migrated database, Kafka records as the
broker would hand them over (real CloudEvents headers) through the consumer the service
runs (inbox, handler, outbox, dead letters), and the outbox read back as what the relay
would publish. No broker, no HTTP."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.credentials import handlers as credentials
from microcred_registry.migrations import MIGRATIONS
from microcred_shared.consumer import BatchConsumer, BatchHandler
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events import CredentialIssued, Event

BASE = "https://registry.test"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
_offsets = itertools.count()


class Registry:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1

    @staticmethod
    def record(topic: str, event: Event, *, ce_id: str | None = None) -> ConsumerRecord:
        env = new_envelope(event, "/tests", event_id=ce_id or str(uuid.uuid4()))
        value = encode(event)
        return ConsumerRecord(topic=topic, partition=0, offset=next(_offsets), timestamp=0,
                              timestamp_type=0, key=event.key(), value=value, checksum=None,
                              serialized_key_size=-1, serialized_value_size=len(value),
                              headers=env.headers())

    async def deliver(self, topic: str, handler: BatchHandler, expected: type[Event] | None,
                      records: Sequence[ConsumerRecord | Event]) -> BatchConsumer:
        """One batch, as the service's subscription would apply it."""
        consumer = BatchConsumer(service="registry", engine=self.engine, handler=handler,
                                 expected=expected)
        await consumer.apply([r if isinstance(r, ConsumerRecord) else self.record(topic, r)
                              for r in records])
        return consumer

    async def register(self, *records: ConsumerRecord | Event) -> BatchConsumer:
        """Records on the issued-credentials topic, through the subscription main.py makes
        (the credentials handler bound to the public base URL)."""
        return await self.deliver(topics.CREDENTIALS_ISSUED,
                                  partial(credentials.on_issued, base_url=BASE),
                                  CredentialIssued, records)

    async def published(self) -> list[dict[str, Any]]:
        """The outbox, oldest first: topic, CloudEvents type, payload (decoded JSON) and,
        for a dead letter, its reason."""
        out = []
        for topic, headers, payload in await self.rows(
                "SELECT topic, headers, payload FROM outbox ORDER BY id"):
            h = dict(json.loads(headers))
            out.append({"topic": topic, "type": h.get("ce_type"),
                        "reason": h.get("dlq_reason"), "payload": json.loads(payload)})
        return out

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())


@pytest.fixture
async def db(handler_db: Callable[[Any], Awaitable[AsyncEngine]]) -> Registry:
    """A fresh registry database: every table, inbox and outbox included, and nothing in it."""
    return Registry(await handler_db(MIGRATIONS))
