"""Issuance's per-batch statements on the driver's connection, when that is safe (issue 12).

A consumer batch runs in a transaction the consumer began on the asyncpg connection under
the handler's SQLAlchemy connection (ADR 37). A statement sent on that asyncpg connection
directly joins the transaction (savepoints included) and skips SQLAlchemy's work per
statement: 50-80 µs of client CPU each, measured on the statements below, several per
batch. Only when a transaction is already open on it, though: in a plain `engine.begin()`
(an HTTP route, a handler test) SQLAlchemy sends BEGIN with its first statement, so a
statement sent on the driver before that would run, and commit, on its own. Then the
statement goes through SQLAlchemy as before.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_shared.db import driver_in_transaction, driver_of


async def in_transaction(conn: AsyncConnection) -> Any | None:
    """The asyncpg connection under `conn` if a transaction is open on it, else None."""
    return await driver_in_transaction(conn)


async def outside_transaction(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, which must have no transaction open: each
    statement sent on it commits on its own (autocommit)."""
    driver = await driver_of(conn)
    if driver is None or driver.is_in_transaction():
        raise RuntimeError("outside_transaction needs a connection in no transaction")
    return driver
