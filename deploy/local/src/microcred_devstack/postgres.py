"""PostgreSQL for development and tests: the server in DATABASE_URL, or an embedded one.

Each service owns one database on one shared server (docs/architecture.md); this module
gives that server's URL (`postgresql://user:pw@127.0.0.1:PORT/postgres`) and creates the
databases. The embedded server itself is in pg_embedded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from ._sync import run_sync
from .pg_embedded import (
    PG_PASSWORD,
    PG_USER,
    SYSTEM_USER,
    PostgresError,
    find_server,
    server_pid,
    start_server,
    stop_server,
)
from .processes import HOST, wait_port_closed

__all__ = [
    "PgHandle",
    "PostgresError",
    "database_url",
    "ensure_databases",
    "ensure_databases_async",
    "find_embedded",
    "start_embedded",
    "start_postgres",
]

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class PgHandle:
    """A usable server: `url` points at its `postgres` database; stop() stops what we started."""

    url: str
    embedded: bool = False
    data_dir: Path | None = None
    port: int | None = None
    log_file: Path | None = None
    _as_user: str | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return server_pid(self.data_dir) if self.data_dir is not None else None

    def is_running(self) -> bool:
        return self.pid is not None if self.embedded else True

    def stop(self) -> None:
        """Stop the embedded server (fast shutdown); a server from DATABASE_URL is left alone."""
        if not self.embedded or self.data_dir is None or self.pid is None:
            return
        stop_server(self.data_dir, self._as_user)
        if self.port:
            wait_port_closed(self.port, timeout=10)


def _url(port: int | None) -> str:
    return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{port}/postgres"


def start_embedded(state_dir: Path, port: int | None = None) -> PgHandle:
    """Start (or find running) the embedded server of state_dir (files in state_dir/postgres)."""
    data, port, log_file, user = start_server(Path(state_dir).resolve(), port)
    return PgHandle(_url(port), True, data, port, log_file, user)


def find_embedded(state_dir: Path) -> PgHandle | None:
    """A handle on state_dir's embedded server (running or not), None if never created."""
    found = find_server(Path(state_dir).resolve())
    if found is None:
        return None
    data, port, log_file = found
    user = SYSTEM_USER if os.geteuid() == 0 else None
    return PgHandle(_url(port), True, data, port, log_file, user)


def start_postgres(state_dir: Path, port: int | None = None) -> PgHandle:
    """DATABASE_URL when it is set (any real server), else the embedded server."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return PgHandle(url, embedded=False)
    return start_embedded(state_dir, port)


def database_url(server_url: str, database: str) -> str:
    """server_url with its database name replaced (what each service does with DATABASE_URL)."""
    base, sep, query = server_url.partition("?")
    head, _, _ = base.rpartition("/")
    if "://" not in head:  # no path in the URL at all
        head = base
    return f"{head}/{database}" + (sep + query if sep else "")


async def ensure_databases_async(server_url: str, names: Iterable[str]) -> list[str]:
    """Create the databases that do not exist yet; return the names created."""
    wanted = list(names)
    for name in wanted:
        if not _DB_NAME.match(name):  # CREATE DATABASE cannot take a bind parameter
            raise ValueError(f"unsafe database name {name!r}")
    conn = await asyncpg.connect(server_url, timeout=15)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database")
        existing = {row["datname"] for row in rows}
        created = []
        for name in wanted:
            if name not in existing:
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
                except asyncpg.DuplicateDatabaseError:
                    pass  # a concurrent `up` won the race
        return created
    finally:
        await conn.close()


def ensure_databases(server_url: str, names: Iterable[str]) -> list[str]:
    return run_sync(ensure_databases_async(server_url, list(names)))
