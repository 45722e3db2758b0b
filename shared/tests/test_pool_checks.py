"""Pooled connections are checked only when they sat unused (issue 12): a connection in use
a moment ago goes straight to its statement (asyncpg's check is three round trips, BEGIN,
`;`, ROLLBACK, as much as the work of a read), one that sat idle is checked and, if the
server dropped it, replaced without the caller noticing; one that died while in use fails
its statement as `unavailable` (a 503 to retry) and the pool recovers at once. Real
PostgreSQL; the server drops a session with pg_terminate_backend."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_shared import db


def _sent(engine: AsyncEngine) -> list[str]:
    """What the driver sends by itself (transaction control, the connection check)."""
    sent: list[str] = []
    watched: set[int] = set()

    def watch(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = dbapi_connection.driver_connection
        if id(raw) not in watched:
            watched.add(id(raw))
            raw.add_query_logger(lambda q: sent.append(q.query))

    sa.event.listen(engine.sync_engine.pool, "checkout", watch)
    return sent


async def _pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(url: str, pid: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.fixture
async def engine(pg_server: str) -> Any:
    engine = db.make_engine(pg_server.replace("postgresql://", "postgresql+asyncpg://"),
                            pool_size=1)
    yield engine
    await engine.dispose()


async def test_a_connection_in_use_a_moment_ago_is_not_checked(engine: AsyncEngine) -> None:
    await _pid(engine)
    sent = _sent(engine)
    for _ in range(3):
        await _pid(engine)
    assert ";" not in sent, sent  # no ping
    assert sent.count("BEGIN;") == 3  # the reads' own transactions, nothing more


async def test_an_idle_connection_the_server_dropped_is_replaced_unnoticed(
        engine: AsyncEngine, pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await _pid(engine)
    await _kill(pg_server, first)
    monkeypatch.setattr(db, "IDLE_CHECK", 0.0)  # as if it sat unused for a while
    second = await _pid(engine)  # checked, found gone, replaced: no error
    assert second != first


async def test_a_connection_dropped_while_in_use_fails_as_unavailable_once(
        engine: AsyncEngine, pg_server: str) -> None:
    first = await _pid(engine)
    await _kill(pg_server, first)  # dropped moments after its last use: not checked
    with pytest.raises(sa.exc.DBAPIError) as failed:
        await _pid(engine)
    assert db.unavailable(failed.value)  # a 503 with Retry-After, a batch redelivered
    assert await _pid(engine) != first  # the next caller gets a new connection
