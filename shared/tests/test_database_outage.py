"""When the database is refused or hangs, an HTTP caller gets a 503 problem with Retry-After
within a bounded time, readiness says so, and the log says it once (issue 13, items 3-4).
Real asyncpg connections: to a port nobody listens on, and to a server that accepts the
connection and then never answers (what a hung PostgreSQL looks like to a client)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Request

from microcred_shared import db
from microcred_shared.logs import RepeatFilter, outages
from microcred_shared.runtime import ServiceRuntime, runtime_of
from microcred_shared.settings import ServiceSettings

router = APIRouter()


@router.get("/things")
async def things(request: Request) -> dict[str, int]:
    engine = runtime_of(request).engine
    assert engine is not None
    async with engine.connect() as conn:
        return {"n": (await conn.execute(sa.text("SELECT 1"))).scalar_one()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client(url: str) -> tuple[httpx.AsyncClient, ServiceRuntime]:
    rt = ServiceRuntime(ServiceSettings(), [])
    app = rt.app("test", routers=[router])
    # Short bounds keep the test quick; production uses db.STATEMENT_TIMEOUT etc.
    rt.engine = db.make_engine(url, statement_timeout=1.0)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return client, rt


@pytest.fixture
async def hung_server() -> AsyncIterator[int]:
    """Accepts connections and reads, never writes: a PostgreSQL that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in held:
            w.close()
        server.close()


@pytest.fixture(autouse=True)
def _short_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr(db, "POOL_TIMEOUT", 1.0)


@pytest.mark.parametrize("kind", ["refused", "hung"])
async def test_an_unreachable_database_is_a_503_with_retry_after_in_bounded_time(
        kind: str, hung_server: int) -> None:
    port = _free_port() if kind == "refused" else hung_server
    client, rt = await _client(f"postgresql+asyncpg://u:p@127.0.0.1:{port}/x")
    async with client:
        started = time.monotonic()
        r = await client.get("/things")
        took = time.monotonic() - started
        ready = await client.get("/readyz")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "5"
    assert r.json()["type"].endswith("/unavailable") and "retry" in r.json()["detail"]
    assert took < 5.0, f"the caller waited {took:.1f} s"
    assert ready.status_code == 503 and ready.json()["database"] == "unavailable"
    assert rt.engine is not None
    await rt.engine.dispose()


async def test_a_reachable_database_answers_and_is_ready(pg_server: str) -> None:
    client, rt = await _client(pg_server.replace("postgresql://", "postgresql+asyncpg://"))
    async with client:
        assert (await client.get("/things")).json() == {"n": 1}
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert rt.engine is not None
    await rt.engine.dispose()


def test_repeats_are_held_back_and_counted() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RepeatFilter(window=0.2))
    log = logging.getLogger("test.repeats")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(1000):
            log.warning("Unable connect to node with id %s", i)
        log.warning("something else")
        time.sleep(0.25)
        log.warning("Unable connect to node with id %s", 1001)
    finally:
        log.removeHandler(handler)
    lines = [r.getMessage() for r in records]
    assert lines[0] == "Unable connect to node with id 0"
    assert lines[1] == "something else"
    assert lines[2] == ("Unable connect to node with id 1001 "
                        "[and 999 more like it in the last 0 s]")
    assert len(lines) == 3


def test_an_outage_is_said_when_it_starts_while_it_lasts_and_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    outages.every = 0.05
    try:
        with caplog.at_level(logging.WARNING, logger="microcred.outages"):
            for _ in range(500):
                outages.down("kafka", ConnectionRefusedError("refused"))
            time.sleep(0.06)
            outages.down("kafka", ConnectionRefusedError("refused"))
            outages.up("kafka")
            outages.up("kafka")
    finally:
        outages.every = 30.0
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 3, said
    assert said[0] == "kafka unavailable: ConnectionRefusedError: refused"
    assert said[1].startswith("kafka still unavailable after") and "(501 failures)" in said[1]
    assert said[2].startswith("kafka back after") and "(501 failures)" in said[2]
