"""Pooled connections are checked only when they sat unused (issue 12): a connection in use
a moment ago goes straight to its statement (asyncpg's check is three round trips, BEGIN,
`;`, ROLLBACK, as much as the work of a read), one that sat idle is checked and, if the
server dropped it, replaced without the caller noticing; one that died while in use fails
its statement as `unavailable` (a 503 to retry) and the pool recovers at once; one the
driver already saw closed is replaced whatever its age. Real PostgreSQL; the server drops
a session with pg_terminate_backend."""

from __future__ import annotations

import asyncio
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


async def _kill(url: str, pid: int, conn: Any = None) -> None:
    """Ends the session `pid` and waits until it is gone (and the client had a moment to
    read the end of its socket)."""
    import asyncpg

    admin = conn or await asyncpg.connect(url)
    try:
        # with a timeout, it returns once the session is gone
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        await asyncio.sleep(0.05)
    finally:
        if conn is None:
            await admin.close()


@pytest.fixture
async def engine(handler_db: Any) -> Any:
    """A database of its own (a test refuses connections to it), through make_engine."""
    engine = await handler_db([])
    async with engine.connect():  # one connection in the pool, the one every test reuses
        pass
    return engine


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


async def test_a_connection_the_server_closed_is_replaced_even_if_used_a_moment_ago(
        engine: AsyncEngine, pg_server: str) -> None:
    first = await _pid(engine)
    await _kill(pg_server, first)  # the driver sees the session end: no round trip needed
    sent = _sent(engine)
    assert await _pid(engine) != first
    assert ";" not in sent


async def test_a_database_refusing_connections_is_unavailable_at_checkout(
        engine: AsyncEngine, pg_server: str) -> None:
    """What a caller holding the driver's connection itself (notify's delivery) relies on:
    the checkout, not a later statement on a dead connection, says the database is gone
    (as SQLAlchemy's error, not the driver's)."""
    import asyncpg

    name = engine.url.database
    first = await _pid(engine)
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await _kill(pg_server, first, admin)
        with pytest.raises(sa.exc.DBAPIError) as failed:
            async with engine.connect() as conn:
                await conn.get_raw_connection()
        assert "not currently accepting connections" in str(failed.value)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_a_session_ended_under_the_drivers_own_connection_is_unavailable(
        engine: AsyncEngine, pg_server: str) -> None:
    """A caller using the driver's connection itself (notify records its mails so) gets
    the driver's error when the server ends the session mid-statement; it is an outage
    (retry later), not a bug."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        pid = raw.get_server_pid()
        import asyncpg

        admin = await asyncpg.connect(pg_server)
        try:
            statement = asyncio.ensure_future(raw.execute("SELECT pg_sleep(5)"))
            await asyncio.sleep(0.2)
            await _kill(pg_server, pid, admin)
            with pytest.raises(Exception) as failed:
                await statement
        finally:
            await admin.close()
    assert not isinstance(failed.value, sa.exc.DBAPIError)  # the driver's own
    assert db.unavailable(failed.value)
