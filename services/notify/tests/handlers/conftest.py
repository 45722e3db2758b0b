"""Handler tests: notify's batch handlers and use cases against a real PostgreSQL (the root
`handler_db` fixture), no broker. Records go through the shared consumer (CloudEvents
decoding, inbox dedupe, dead letters) exactly as the Kafka subscriber hands them over."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_notify.employer_feed.webhooks import WebhookWorker
from microcred_notify.learner_mail.delivery import Deliverer
from microcred_notify.main import build
from microcred_notify.models import MIGRATIONS
from microcred_notify.settings import Settings
from microcred_shared.consumer import BatchConsumer, BatchHandler
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events import Event


def record(topic: str, event: Event, *, offset: int = 0, ce_id: str | None = None,
           value: bytes | None = None) -> ConsumerRecord:
    """A Kafka record as the broker delivers it: CloudEvents binary-mode headers, JSON body."""
    env = new_envelope(event, "/tests", event_id=ce_id)
    payload = encode(event) if value is None else value
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=event.key(), value=payload, checksum=None,
                          serialized_key_size=0, serialized_value_size=len(payload),
                          headers=env.headers())


@dataclass
class Outboxed:
    topic: str
    headers: dict[str, str]
    payload: bytes

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.payload)
        return data


@dataclass
class Db:
    engine: AsyncEngine
    _offsets: dict[str, int] = field(default_factory=dict)

    async def consume(self, topic: str, handler: BatchHandler, expected: type[Event] | None,
                      *events: Event, ce_ids: list[str] | None = None,
                      values: list[bytes] | None = None) -> None:
        """Apply one batch of `events` on `topic` as the subscriber would (`values`: the
        records' payloads as sent, when not the events' own encoding)."""
        records = []
        for i, e in enumerate(events):
            offset = self._offsets.get(topic, 0)
            self._offsets[topic] = offset + 1
            records.append(record(topic, e, offset=offset,
                                  ce_id=ce_ids[i] if ce_ids else None,
                                  value=values[i] if values else None))
        consumer = BatchConsumer(service="notify", engine=self.engine, handler=handler,
                                 expected=expected)
        await consumer.apply(records)

    async def rows(self, query: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.text(query), params)).all())

    async def execute(self, query: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(query), params)

    async def outbox(self, topic: str | None = None) -> list[Outboxed]:
        rows = await self.rows("SELECT topic, headers, payload FROM outbox ORDER BY id")
        out = [Outboxed(r.topic, dict(json.loads(r.headers)), bytes(r.payload)) for r in rows]
        return [o for o in out if topic is None or o.topic == topic]


@pytest.fixture
async def db(handler_db: Any) -> Db:
    return Db(await handler_db(MIGRATIONS))



Scrape = Callable[..., Awaitable[dict[str, float]]]


@pytest.fixture
def notify_metrics() -> Scrape:
    """`await notify_metrics(deliverer=..., webhooks=...)`: notify's GET /metrics as its
    composition root (main.build) wires it, with the delivery workers under test in place of
    the ones its start would make; the unlabelled samples by name."""

    async def scrape(*, deliverer: Deliverer | None = None,
                     webhooks: WebhookWorker | None = None) -> dict[str, float]:
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        app, rt = build(Settings(MICROCRED_NOTIFY_SECRET_KEY=key))
        rt.mail.deliverer, rt.employers.worker = deliverer, webhooks
        transport = httpx.ASGITransport(app=app)  # not started: no broker, no relay
        async with httpx.AsyncClient(transport=transport, base_url="http://notify") as http:
            r = await http.get("/metrics")
        assert r.status_code == 200
        return {sample.name: sample.value for family in text_string_to_metric_families(r.text)
                for sample in family.samples if not sample.labels}

    return scrape
