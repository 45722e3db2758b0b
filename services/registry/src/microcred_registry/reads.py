"""The registry's hot reads (a credential by its id, its verification and page, a learner's
list, a status list): one statement, one round trip to PostgreSQL each (issue 12).

Through the service's engine a read costs six round trips: the pool's pre-ping (BEGIN,
`;`, ROLLBACK: SQLAlchemy's asyncpg dialect wraps it in a transaction), the BEGIN of the
connection's implicit transaction, the statement, the ROLLBACK when the connection goes
back. On a busy host each round trip is a context switch both ways, and they were most of
the registry's CPU per read. So these reads take their own engine over the same database
(`read_engine`): autocommit (a single SELECT needs no transaction), no pre-ping, nothing to
reset on return, and each statement sent on the driver's connection as it is (asyncpg:
prepared once per connection, no SQLAlchemy compilation per call).

Without a pre-ping a connection the server dropped (a restart, a failover) is found out by
the statement itself: `fetch` then discards that connection and runs the read once more on a
fresh one. Reads only: anything that writes keeps the service's engine and its transactions.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from microcred_shared.db import POOL_TIMEOUT, connect_args, driver_of

# What a connection the server has dropped raises from asyncpg: the read is run again once.
# InternalClientError ("cannot switch to state …") is what a statement meets when the
# server's goodbye arrived on the socket but the driver has not yet marked it closed.
_GONE = (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError,
         asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CannotConnectNowError,
         asyncpg.exceptions.InternalClientError, ConnectionError)


def read_engine(engine: AsyncEngine, *, pool_size: int = 10) -> AsyncEngine:
    """An engine for reads over `engine`'s database, as the module docstring says."""
    return create_async_engine(
        engine.url, pool_size=pool_size, max_overflow=10, pool_pre_ping=False,
        pool_reset_on_return=None, pool_timeout=POOL_TIMEOUT, isolation_level="AUTOCOMMIT",
        connect_args=connect_args())


async def fetch(engine: AsyncEngine, sql: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one read-only statement (`$1`... parameters), in one round trip on an
    engine from `read_engine`; on any other engine (the handler tests give the service's)
    the same answer at that engine's cost."""
    for attempt in (1, 2):
        async with engine.connect() as conn:
            driver = await driver_of(conn)
            try:
                return list(await driver.fetch(sql, *args))
            except _GONE:
                await conn.invalidate()
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


async def fetchrow(engine: AsyncEngine, sql: str, *args: Any) -> asyncpg.Record | None:
    rows = await fetch(engine, sql, *args)
    return rows[0] if rows else None
