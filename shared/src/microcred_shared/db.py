"""Database plumbing every service shares: engine, migrations, inbox and outbox tables."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Field, SQLModel, col

Migration = Callable[[AsyncConnection], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class InboxEntry(SQLModel, table=True):
    """One row per event a consumer has applied: the dedupe key for at-least-once delivery."""

    __tablename__ = "inbox"
    topic: str = Field(primary_key=True)
    ce_id: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    # SHA-256 of what the event said (consumer.event_digest): the same ce_id with another
    # payload is refused, not dropped. NULL on entries from before (issue 13).
    digest: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class OutboxEntry(SQLModel, table=True):
    """Events written in the same transaction as the state they describe; a relay publishes
    them to Kafka afterwards and deletes them once the broker acknowledged."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    topic: str
    key: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    headers: str = Field(sa_type=sa.Text, description="JSON array of [name, value] pairs")
    payload: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    # Which relay publishes it: SHARD_OF_KEY of the key (ADR 2, shared publishing).
    shard: int = Field(default=0, sa_type=sa.SmallInteger, sa_column_kwargs={
        "server_default": "0"})


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    applied_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


def table_of(model: type[SQLModel]) -> sa.Table:
    """A table model's Table: SQLModel sets `__table__` but does not declare it to type
    checkers."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


SHARED_TABLES: list[sa.Table] = [table_of(InboxEntry), table_of(OutboxEntry),
                                 table_of(SchemaVersion)]


# Every database call is bounded (issue 13): a refused server fails at once, a hung one
# within these, so an HTTP caller gets a 503 to retry instead of waiting, and a consumer
# retries its batch. Seconds; the statement timeout is also set on the server.
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 10.0


# SQLSTATE classes that say "not now", not "never": connection exceptions, operator
# intervention (statement timeout, shutdown, starting up), insufficient resources.
_RETRYABLE_STATES = ("08", "57", "53")
_LOST = (asyncpg.exceptions.InterfaceError, asyncpg.exceptions.InternalClientError,
         asyncpg.exceptions.PostgresConnectionError, ConnectionError)


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot answer now (refused, hung, restarting,
    timed out) rather than that the statement is wrong: callers retry or answer 503."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | OSError):
        return True  # OSError covers refused connections and TimeoutError
    if isinstance(exc, _LOST):  # from the driver's own connection (no SQLAlchemy around it)
        return True
    if isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in _RETRYABLE_STATES:
        return True  # the server's answer to a statement sent on the driver's connection
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        for err in (exc.orig, getattr(exc.orig, "__cause__", None)):
            if isinstance(err, _LOST):  # the connection broke mid-statement
                return True
            state = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
            if isinstance(state, str) and state[:2] in _RETRYABLE_STATES:
                return True
    return False


async def driver_of(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy one. Statements sent on it skip
    SQLAlchemy's work per statement (issue 12) and join whatever transaction is open on
    the session: none (each statement commits on its own), `driver_transaction`'s, or one
    SQLAlchemy began."""
    driver: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    return driver


async def driver_in_transaction(conn: AsyncConnection) -> asyncpg.Connection | None:
    """The asyncpg connection under `conn` if a transaction is open on it, else None.

    A consumer batch runs in a transaction the consumer began on the asyncpg connection
    under the handler's SQLAlchemy connection (ADR 37): a statement a handler sends on that
    asyncpg connection directly joins the transaction (savepoints included) and skips
    SQLAlchemy's work per statement (50-80 µs of client CPU each; issue 12). Only when a
    transaction is already open on it, though: in a plain `engine.begin()` (an HTTP route,
    a handler test) SQLAlchemy sends BEGIN with its first statement, so a statement sent on
    the driver before that would run, and commit, on its own; the caller then sends it
    through SQLAlchemy."""
    driver = await driver_of(conn)
    if driver is None or not driver.is_in_transaction():
        return None
    return driver


@asynccontextmanager
async def driver_transaction(conn: AsyncConnection) -> AsyncIterator[asyncpg.Connection]:
    """A transaction begun and ended on the asyncpg connection under `conn`, which yields
    that connection: statements sent on it directly and SQLAlchemy's on `conn` (savepoints
    included) run in the one transaction, committed when the block ends without an error
    and rolled back otherwise. For the consumer loop (issue 12): its own statements (inbox,
    outbox) and BEGIN and COMMIT skip SQLAlchemy's per-statement work, while handlers keep
    `conn`. SQLAlchemy's asyncpg adapter begins a transaction before a statement only when
    it holds none (`_transaction`): it is handed this one for the block, so it sends no
    BEGIN of its own, and nothing is left for it to commit or roll back afterwards.
    `conn` must be in no transaction (a plain `engine.connect()`), and nothing on it may
    commit or roll back inside the block."""
    raw = await conn.get_raw_connection()
    adapter: Any = raw.dbapi_connection  # SQLAlchemy's AsyncAdapt_asyncpg_connection
    driver: asyncpg.Connection = raw.driver_connection
    if conn.in_transaction() or getattr(adapter, "_transaction", None) is not None:
        raise RuntimeError("driver_transaction needs a connection in no transaction")
    transaction = driver.transaction()
    await transaction.start()
    adapter._transaction = transaction
    try:
        yield driver
    except BaseException:
        await _release(conn, adapter)
        try:
            await transaction.rollback()
        except Exception:
            await _drop(conn)
        raise
    await _release(conn, adapter)
    try:
        await transaction.commit()
    except BaseException as exc:
        if isinstance(exc, _LOST) or not isinstance(exc, asyncpg.PostgresError):
            await _drop(conn)  # not handed back to the pool as if it were sound
        raise


async def _release(conn: AsyncConnection, adapter: Any) -> None:
    """The adapter forgets the transaction; SQLAlchemy's own marker of one, which its
    statements set on `conn`, is cleared (a rollback that sends nothing: the adapter holds
    no transaction), so `conn` can begin again."""
    adapter._transaction = None
    if conn.in_transaction() and not conn.invalidated:
        await conn.rollback()


async def _drop(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
    except Exception:  # already invalidated by SQLAlchemy
        pass


# A pooled connection is checked before use only when it sat unused this long (seconds):
# that is when the server may have restarted or a firewall dropped it. One that was in use
# a moment ago is not: the check is three round trips (asyncpg's ping is BEGIN, `;`,
# ROLLBACK), as much as the work of a read, on every checkout (issue 12). One the driver
# already knows closed (the server ended the session) is replaced whatever its age. Should a
# used connection have died unseen all the same, its statement fails as unavailable (a 503
# to retry, a batch redelivered) and the pool drops every connection opened before it.
IDLE_CHECK = 2.0


def make_engine(url: str, *, pool_size: int = 10,
                statement_timeout: float = STATEMENT_TIMEOUT) -> AsyncEngine:
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=10, pool_timeout=POOL_TIMEOUT,
        connect_args=connect_args(statement_timeout))
    sa.event.listen(engine.sync_engine.pool, "checkin", _idle_from)
    sa.event.listen(engine.sync_engine.pool, "checkout", _check_if_idle)
    return engine


def connect_args(statement_timeout: float = STATEMENT_TIMEOUT) -> dict[str, Any]:
    """asyncpg's connection arguments for the connect and statement bounds (client and server)."""
    return {"timeout": CONNECT_TIMEOUT, "command_timeout": statement_timeout,
            "server_settings": {"statement_timeout": str(int(statement_timeout * 1000))}}


def _idle_from(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _check_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    since = record.info.pop("idle_since", None)
    closed = getattr(getattr(dbapi_connection, "driver_connection", None), "is_closed", None)
    if closed is not None and closed():  # the server closed it and the driver saw it: free
        raise DisconnectionError("a pooled connection was closed by the server")
    if since is None or time.monotonic() - since < IDLE_CHECK:
        return  # new, or in use a moment ago
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool drops this connection and checks out another (a new one if need be).
        raise DisconnectionError(f"an idle pooled connection is gone: {exc!r}") from exc


async def add_inbox_digest(conn: AsyncConnection) -> None:
    """Migration step for every service (appended to each MIGRATIONS): the inbox's digest
    column. A database created after it exists already has it (create_tables)."""
    await conn.execute(sa.text("ALTER TABLE inbox ADD COLUMN IF NOT EXISTS digest bytea"))


# Publishing is shared across a service's instances by shard (ADR 2): a row's shard comes
# from its Kafka key, so one learner's events share a shard, and a shard is published by the
# one relay holding its PostgreSQL advisory lock, in id order. Fixed: a stored row keeps its
# shard, so the number never changes while rows wait (16 = up to 16 publishing instances).
SHARDS = 16
# SQL, for the insert and for the migration that gives rows from before their shard:
# the first byte of SHA-256(key) (256 is a multiple of SHARDS); rows without a key in 0.
SHARD_OF_KEY = f"COALESCE(get_byte(sha256({{key}}), 0) % {SHARDS}, 0)"


def shard_of(key: bytes | None) -> int:
    """The shard of a Kafka key, as SHARD_OF_KEY computes it in the database."""
    return hashlib.sha256(key).digest()[0] % SHARDS if key is not None else 0



async def add_outbox_shard(conn: AsyncConnection) -> None:
    """Migration step for every service (appended to each MIGRATIONS): the outbox's shard
    column, filled in for rows written before it (a database created after it exists
    already has it, from create_tables)."""
    await conn.execute(sa.text(
        "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS shard smallint NOT NULL DEFAULT 0"))
    await conn.execute(sa.text(
        f"UPDATE outbox SET shard = {SHARD_OF_KEY.format(key='key')} WHERE key IS NOT NULL"))


async def keep_outbox_rows_inline(conn: AsyncConnection) -> None:
    """Migration step (appended to the MIGRATIONS of the services whose outbox carries large
    records): an outbox row up to a page (8 KB) stays in the table as written, uncompressed.
    PostgreSQL's default compresses every row over 2 KB (pglz) and moves what is still over
    2 KB to its TOAST table, to read it back and decompress it when the relay claims the row
    a moment later: for a signed credential's ~2.5-5 KB event, 63 µs of the server's CPU
    per row written and claimed instead of 23 µs (issue 12). An outbox holds rows for
    seconds, so the space compression saves is not worth it; a row over 8 KB is still
    compressed and stored aside."""
    await conn.execute(sa.text("ALTER TABLE outbox SET (toast_tuple_target = 8160)"))


def create_tables(tables: Sequence[sa.Table]) -> Migration:
    async def step(conn: AsyncConnection) -> None:
        await conn.run_sync(lambda sync: SQLModel.metadata.create_all(sync, tables=list(tables)))

    return step


async def migrate(engine: AsyncEngine, migrations: Sequence[Migration]) -> int:
    """Apply the numbered migrations not yet applied; safe with several instances starting."""
    async with engine.begin() as conn:
        # One instance migrates at a time; the others wait and then find nothing to do.
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7700101)"))
        await create_tables([table_of(SchemaVersion)])(conn)
        done = set((await conn.execute(sa.select(col(SchemaVersion.version)))).scalars())
        for number, step in enumerate(migrations, start=1):
            if number in done:
                continue
            await step(conn)
            await conn.execute(sa.insert(SchemaVersion).values(version=number))
        return len(migrations)


async def ensure_database(server_url: str, name: str) -> None:
    """Create a service database on the server if it is missing (local stacks and tests)."""
    import asyncpg

    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
