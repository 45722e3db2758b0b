"""Fixtures every test tree may use.

`handler_db` gives a handler test (the middle layer: a service's batch handlers and use
cases against a real PostgreSQL, no broker) a fresh, migrated database in seconds. The
server is the embedded PostgreSQL of the devstack, started once per test session (or the
server in DATABASE_URL)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

_counter = itertools.count()
MakeDatabase = Callable[[Sequence[Any]], Awaitable[Any]]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running PostgreSQL server's `postgres` database."""
    from microcred_devstack.postgres import start_postgres

    handle = start_postgres(Path(tmp_path_factory.mktemp("handler-pg")))
    try:
        yield handle.url
    finally:
        handle.stop()


@pytest.fixture
async def handler_db(pg_server: str) -> AsyncIterator[MakeDatabase]:
    """`engine = await handler_db(MIGRATIONS)`: a new database with the service's tables
    (inbox and outbox included), on the session's throwaway server."""
    from microcred_devstack.postgres import ensure_databases_async
    from microcred_shared.db import make_engine, migrate
    from microcred_shared.settings import database_url_for

    engines = []

    async def make(migrations: Sequence[Any]) -> Any:
        name = f"handler_{next(_counter)}_{id(engines) % 100000}"
        await ensure_databases_async(pg_server, [name])
        engine = make_engine(database_url_for(pg_server, name), pool_size=2)
        await migrate(engine, migrations)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()
