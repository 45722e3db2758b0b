"""A fresh issuance database per test, with the seed catalogue projected and every seed
provider's key made: the handlers and use cases run as in the service, minus the broker."""

from __future__ import annotations

import json
import os
import types
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from pydantic import SecretStr

from microcred_issuance import deps
from microcred_issuance.issuing import routes
from microcred_issuance.issuing.handlers import Issuing
from microcred_issuance.keys.keystore import KeyStore
from microcred_issuance.keys.signing import Signer
from microcred_issuance.migrations import MIGRATIONS
from microcred_shared import problems, projection
from microcred_shared.catalog import Catalog, load_catalog
from microcred_shared.consumer import BatchConsumer, BatchHandler
from microcred_shared.contract.cloudevents import decode, encode, new_envelope, parse_envelope
from microcred_shared.contract.events import AssessmentDecided, Event, learner_key
from microcred_shared.settings import REPO_ROOT
from microcred_testkit.backbone import learner

BASE = "https://registry.microcred.example"
SEED: Catalog = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")


@dataclass
class Published:
    topic: str
    event: Event | None  # None for a dead letter (the original bytes)
    headers: dict[str, str]


@dataclass
class World:
    engine: Any
    keys: KeyStore
    signer: Signer
    live: projection.LiveCatalog
    kek: bytes
    seed: Catalog = SEED
    base_url: str = BASE
    _offset: int = 0

    @property
    def issuing(self) -> Issuing:
        return Issuing(self.live, self.keys, self.signer)

    async def deliver(self, topic: str, events: list[Event], handler: BatchHandler,
                      expected: type[Event] | None, *, ids: list[str] | None = None) -> None:
        """Feed records as Kafka would (CloudEvents headers, JSON value) through the
        consumer loop the service runs: inbox, handler, outbox and dead letters."""
        records = []
        for n, event in enumerate(events):
            env = new_envelope(event, "/test", event_id=ids[n] if ids else None)
            self._offset += 1
            value = encode(event)
            records.append(ConsumerRecord(topic, 0, self._offset, 0, 0, event.key(), value,
                                          None, 0, len(value), env.headers()))
        consumer = BatchConsumer(service="issuance", engine=self.engine, handler=handler,
                                 expected=expected)
        await consumer.apply(records)

    async def published(self, topic: str | None = None) -> list[Published]:
        """What the relay would publish, in order."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT topic, headers, payload FROM outbox ORDER BY id"))).all()
        out = []
        for row in rows:
            headers = [(k, v.encode()) for k, v in json.loads(row.headers)]
            env = None if row.topic.endswith(".dlq") else parse_envelope(headers)
            event = decode(env, bytes(row.payload)) if env else None
            out.append(Published(row.topic, event, {k: v.decode() for k, v in headers}))
        return [p for p in out if topic is None or p.topic == topic]

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())

    @staticmethod
    def decided(definition_id: str, *, who: str | None = None, provider_id: str | None = None,
                achieved: bool = True, version: int | None = None, **outcome: Any,
                ) -> AssessmentDecided:
        d = SEED.definition(definition_id)
        assert d is not None
        person = learner(who or uuid.uuid4().hex[:8])
        return AssessmentDecided(
            assessment_id=uuid.uuid4(), provider_id=provider_id or d.provider_id,
            result_id=f"r-{uuid.uuid4().hex[:8]}", definition_id=d.id,
            definition_version=version or d.version, learner=person,
            learner_key=learner_key(person.email), achieved=achieved,
            reason="passed" if achieved else "not passed", assessed_at=datetime.now(UTC),
            decided_at=datetime.now(UTC), **outcome)



@pytest.fixture
async def world(handler_db: Callable[[Any], Awaitable[Any]]) -> World:
    engine = await handler_db(MIGRATIONS)
    async with engine.begin() as conn:
        for provider in SEED.providers:
            await projection.put_provider(conn, provider)
        for definition in SEED.definitions:
            await projection.put_definition(conn, definition)
    kek = os.urandom(32)
    keys = KeyStore(engine, kek)
    await keys.ensure_active([p.id for p in SEED.providers])
    live = projection.LiveCatalog(engine)
    await live.refresh(force=True)
    return World(engine, keys, Signer(keys, BASE, "eddsa-rdfc-2022"), live, kek)


LAKESHORE = "lakeshore-college"
SERVICE_TOKEN = "registry-secret"


class _Relay:
    def wake(self) -> None:
        pass


@pytest.fixture
async def client(world: World) -> Any:
    """The issuing routes in-process, on the test's database, acting for Lakeshore College
    (the provider dependency overridden); the service token is SERVICE_TOKEN."""
    rt = types.SimpleNamespace(
        engine=world.engine, relay=_Relay(), catalog=world.live, keys=world.keys,
        signer=world.signer, base_url=world.base_url,
        settings=types.SimpleNamespace(service_token=SecretStr(SERVICE_TOKEN)))
    api = FastAPI()
    problems.install(api)
    api.include_router(routes.router)
    api.dependency_overrides[deps._runtime] = lambda: rt
    api.dependency_overrides[deps._provider] = lambda: LAKESHORE
    # raise_app_exceptions=False: an exception that escapes the handlers is the 500 a
    # caller would see, not a test error that hides which input caused it.
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://issuance") as http:
        yield http


@pytest.fixture
def service_auth() -> dict[str, str]:
    """The header with which the registry calls issuance's internal routes in `client`."""
    return {"authorization": f"Bearer {SERVICE_TOKEN}"}
