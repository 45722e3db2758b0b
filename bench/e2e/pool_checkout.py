"""What a pooled connection's checkout and checkin cost the process, against the statement
it is taken for (issue 12, item 2, wave 17): HTTP ingest's flush took one from the pool per
flush of a few one-result requests.

    uv run python bench/e2e/pool_checkout.py      # an embedded PostgreSQL of its own

Per round: `--n` times `async with engine.connect()` + one `SELECT 1` on the driver (as the
flush sends its statement), then the same statements on one kept connection; the
difference is the checkout and checkin (the pool's events, its reset, SQLAlchemy's
connection object, two greenlet switches), in µs of this process's CPU.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from microcred_devstack.pg_embedded import remove_server
from microcred_devstack.postgres import start_postgres
from microcred_shared.db import driver_of, make_engine


async def _measure(url: str, n: int, rounds: int) -> None:
    engine = make_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as conn:
            await (await driver_of(conn)).fetch("SELECT 1")
        both, alone = [], []
        for _ in range(rounds):
            cpu = time.process_time()
            for _ in range(n):
                async with engine.connect() as conn:
                    await (await driver_of(conn)).fetch("SELECT 1")
            both.append((time.process_time() - cpu) / n * 1e6)
            async with engine.connect() as conn:
                driver = await driver_of(conn)
                cpu = time.process_time()
                for _ in range(n):
                    await driver.fetch("SELECT 1")
                alone.append((time.process_time() - cpu) / n * 1e6)
        print(f"checkout + statement + checkin: median {statistics.median(both):.1f} µs; "
              f"the statement on a kept connection: {statistics.median(alone):.1f} µs; "
              f"checkout and checkin: {statistics.median(both) - statistics.median(alone):.1f}"
              f" µs of CPU ({rounds} rounds of {n})")
    finally:
        await engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="pool-checkout-"))
    pg = start_postgres(state)
    try:
        uvloop.run(_measure(pg.url, args.n, args.rounds))
    finally:
        pg.stop()
        if pg.embedded:  # the server's files too
            remove_server(state)
            shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
