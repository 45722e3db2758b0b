"""Client CPU of issuance's per-batch statements on a real PostgreSQL: each through
SQLAlchemy (as before issue 12's wave 11) and on the driver's connection inside the
consumer's transaction (`microcred_issuance.driver`), batches of `--batch` credentials.

    uv run --frozen python bench/issuance/statements.py [--batch 5] [--batches 300] [--rounds 5]

The last case is a batch of four issuers' credentials: one INSERT per issuer (until wave 15) or
one for the batch.

Starts the devstack's embedded PostgreSQL in a temporary folder (or uses DATABASE_URL's
server) and stops it at the end. CPU is this process's (`time.process_time`): what the
service pays per statement, the server's work not included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from microcred_devstack.postgres import ensure_databases_async, start_postgres
from microcred_issuance.issuing import handlers
from microcred_issuance.migrations import MIGRATIONS
from microcred_issuance.status import lists
from microcred_shared.db import driver_transaction, make_engine, migrate
from microcred_shared.settings import database_url_for

# The statements as they were sent before (SQLAlchemy, every column an array).
_OLD_COLUMNS = ("credential_id", "assessment_id", "provider_id", "definition_id",
                "definition_version", "learner_key", "key_id", "status_index", "issued_at",
                "suspendable")
_OLD_RECORD = sa.text(
    "INSERT INTO issued_credentials (credential_id, assessment_id, provider_id, "
    "definition_id, definition_version, learner_key, key_id, status_index, issued_at, "
    "suspendable, status) SELECT *, 'active' FROM unnest(CAST(:credential_id AS uuid[]), "
    "CAST(:assessment_id AS uuid[]), CAST(:provider_id AS text[]), "
    "CAST(:definition_id AS text[]), CAST(:definition_version AS int[]), "
    "CAST(:learner_key AS text[]), CAST(:key_id AS text[]), CAST(:status_index AS int[]), "
    "CAST(:issued_at AS timestamptz[]), CAST(:suspendable AS boolean[]))")
_OLD_ALLOCATE = sa.text(lists._ALLOCATE.replace("$1", ":pids").replace("$2", ":counts")
                        .replace("$3", ":size"))

Rows = list[dict[str, Any]]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = None
    url = os.environ.get("DATABASE_URL")
    if url is None:
        server = start_postgres(Path(tempfile.mkdtemp(prefix="microcred-statements-")))
        url = server.url
    try:
        await _measure(url, args)
    finally:
        if server is not None:
            server.stop()


async def _measure(url: str, args: argparse.Namespace) -> None:
    name = f"bench_statements_{uuid.uuid4().hex[:8]}"
    await ensure_databases_async(url, [name])
    engine = make_engine(database_url_for(url, name), pool_size=2)
    await migrate(engine, MIGRATIONS)
    now = datetime.now(UTC)
    serial = iter(range(10**9))

    def rows(n: int) -> Rows:
        return [{"credential_id": uuid.uuid4(), "assessment_id": uuid.uuid4(),
                 "provider_id": "lakeshore-college", "key_id": "key-20261207-abcdef",
                 "definition_id": "lakeshore-data-analytics-fundamentals",
                 "definition_version": 1, "learner_key": str(uuid.uuid4()),
                 "status_index": next(serial), "issued_at": now, "suspendable": True}
                for _ in range(n)]

    async def record_before(conn: Any, rs: Rows) -> None:
        await conn.execute(_OLD_RECORD, {k: [r[k] for r in rs] for k in _OLD_COLUMNS})

    async def record_now(conn: Any, rs: Rows) -> None:
        await handlers._record(conn, now, rs)

    issuers = ("lakeshore-college", "coast-mountain-university", "prairie-polytechnic",
               "north-shore-institute")

    async def record_per_issuer(conn: Any, rs: Rows) -> None:  # until wave 15
        for i, issuer in enumerate(issuers):
            if mine := [{**r, "provider_id": issuer} for r in rs[i::len(issuers)]]:
                await handlers._record(conn, now, mine)

    async def record_per_batch(conn: Any, rs: Rows) -> None:
        await handlers._record(conn, now, [{**r, "provider_id": issuers[i % len(issuers)]}
                                           for i, r in enumerate(rs)])

    async def known_before(conn: Any, rs: Rows) -> None:
        (await conn.execute(handlers._KNOWN, {"ids": [r["assessment_id"] for r in rs]})).all()

    async def known_now(conn: Any, rs: Rows) -> None:
        await handlers._known(conn, [r["assessment_id"] for r in rs])

    async def allocate_before(conn: Any, rs: Rows) -> None:
        async with conn.engine.connect() as own:
            own = await own.execution_options(isolation_level="AUTOCOMMIT")
            (await own.execute(_OLD_ALLOCATE, {"pids": ["lakeshore-college"],
                                               "counts": [len(rs)], "size": 131072})).all()

    async def allocate_now(conn: Any, rs: Rows) -> None:
        await lists.allocate(conn, {"lakeshore-college": len(rs)})

    cases: dict[str, tuple[Callable[[Any, Rows], Awaitable[None]], ...]] = {
        "record (INSERT issued_credentials)": (record_before, record_now),
        "redelivery check (SELECT ... ANY)": (known_before, known_now),
        "status index allocation": (allocate_before, allocate_now),
        # A batch of decisions of four issuers' definitions (wave 15).
        "record, 4 issuers: per issuer -> batch": (record_per_issuer, record_per_batch),
    }
    print(f"batches of {args.batch}, {args.batches} per round, best and median of "
          f"{args.rounds} rounds, µs of client CPU per statement (per credential)")
    for label, variants in cases.items():
        times: dict[int, list[float]] = {0: [], 1: []}
        for n in range(args.rounds):
            for which in ((0, 1) if n % 2 == 0 else (1, 0)):
                data = [rows(args.batch) for _ in range(args.batches)]
                async with engine.connect() as conn, driver_transaction(conn):
                    start = time.process_time()
                    for rs in data:
                        await variants[which](conn, rs)
                    times[which].append((time.process_time() - start) / args.batches * 1e6)
        (b, bm), (a, am) = ((min(t), sorted(t)[len(t) // 2]) for t in (times[0], times[1]))
        print(f"  {label:36s} before {b:5.0f} (median {bm:5.0f}) -> now {a:5.0f} "
              f"(median {am:5.0f}); per credential {b / args.batch:5.1f} -> "
              f"{a / args.batch:5.1f}")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
