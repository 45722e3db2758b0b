"""The shared consumer loop and outbox relay alone, two source trees side by side (issue 12).

Each tree's `worker.py` runs in its own process on its own database of one throwaway
PostgreSQL server, both started together: batches of `--chunk` records (an echo handler,
one outbox row per record) applied at `--rate` records/s, the relay publishing to a producer
that acknowledges at once. Printed: CPU per record of the process (consumer + relay) and of
its server backends. No Kafka, no services: what the loop itself costs per batch.

    uv run python bench/consumer/run.py --old /tmp/old-tree [--new .] [--rate 500 --chunk 5]

A tree is a checkout with its own `uv sync --frozen` (`git archive REF | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import uuid
from pathlib import Path

from microcred_devstack.postgres import ensure_databases_async, start_postgres
from microcred_shared.settings import database_url_for

WORKER = Path(__file__).with_name("worker.py")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="the tree to compare with")
    ap.add_argument("--new", default=str(Path(__file__).parents[2]))
    ap.add_argument("--rate", default="500", help="records/s offered (default 500)")
    ap.add_argument("--chunk", default="5", help="records per batch (default 5)")
    ap.add_argument("--n", default="3000", help="records measured (default 3000)")
    args = ap.parse_args()
    trees = {"old": Path(args.old).resolve(), "new": Path(args.new).resolve()}
    server = start_postgres(Path(tempfile.mkdtemp(prefix="consumer-bench-")))
    try:
        names = {k: f"loopbench_{k}_{uuid.uuid4().hex[:6]}" for k in trees}
        asyncio.run(ensure_databases_async(server.url, list(names.values())))
        procs = {k: subprocess.Popen(
            [str(tree / ".venv/bin/python"), str(WORKER), database_url_for(server.url, names[k]),
             args.rate, args.chunk, args.n], cwd=tree, stdout=subprocess.PIPE)
            for k, tree in trees.items()}
        out = {k: json.loads(p.communicate()[0]) for k, p in procs.items()}
    finally:
        server.stop()
    print(f"{args.n} records in batches of {args.chunk} at {args.rate}/s offered")
    for k, r in out.items():
        print(f"  {k}: {r['client_ms_per_record']:.3f} ms CPU per record in the process, "
              f"{r['server_ms_per_record']:.3f} ms in PostgreSQL ({r['wall']:.1f} s wall; "
              f"{r['tree']})")


if __name__ == "__main__":
    main()
