"""The outbox relay alone against a real broker, two source trees side by side (issue 12).

Each tree's relay (`relay_worker.py`, run by that tree's interpreter) publishes a
credential's four records (the backbone's sizes) from its own database of one throwaway
PostgreSQL server to its own topics (8 partitions) on one throwaway Kafka broker, both
sides started together. Printed: CPU per record of each relay's thread (the rows are
written on another) and process, and the broker's CPU per record of both. `--mode
burst`: a backlog of N rows, claims of 1,000; `--mode rate`: rows written `--chunk` at a
time at `--rate` rows/s, the relay woken after each.

    uv run python bench/consumer/relay.py --old /tmp/old-tree [--new .] [--mode rate]
    uv run python bench/consumer/relay.py --old . --new . --compression-new zstd

A tree is a checkout with its own `uv sync --frozen` (`git archive REF | tar -x -C DIR`).
`--env-new NAME=VALUE` passes an environment variable to the new side only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import psutil

from microcred_devstack import KafkaNode
from microcred_devstack.kafka import create_topics
from microcred_devstack.postgres import ensure_databases_async, start_postgres
from microcred_shared.settings import database_url_for

WORKER = Path(__file__).with_name("relay_worker.py")
TOPICS = ("decisions", "issued", "registered", "notifications")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="the tree to compare with")
    ap.add_argument("--new", default=str(Path(__file__).parents[2]))
    ap.add_argument("--mode", choices=("burst", "rate"), default="burst")
    ap.add_argument("--rate", default="2000", help="rows/s offered in --mode rate")
    ap.add_argument("--chunk", default="4", help="rows per write in --mode rate")
    ap.add_argument("--n", default="20000", help="rows measured (default 20,000)")
    ap.add_argument("--compression-old", default="none")
    ap.add_argument("--compression-new", default="none")
    ap.add_argument("--env-new", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    trees = {"old": Path(args.old).resolve(), "new": Path(args.new).resolve()}
    state = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    server = start_postgres(state / "pg")
    broker = KafkaNode(state / "kafka").start()
    try:
        broker.wait_ready()
        prefixes = {k: f"relaybench-{k}-{uuid.uuid4().hex[:6]}" for k in trees}
        asyncio.run(create_topics(broker.bootstrap, [f"{p}.{t}" for p in prefixes.values()
                                                     for t in TOPICS], partitions=8))
        asyncio.run(ensure_databases_async(server.url, [p.replace("-", "_")
                                                        for p in prefixes.values()]))
        java = psutil.Process(broker.pid)
        b0 = sum(java.cpu_times()[:2])
        procs = {}
        for k, tree in trees.items():
            env = dict(os.environ, RELAY_BENCH_COMPRESSION=getattr(args, f"compression_{k}"))
            if k == "new":
                env.update(e.split("=", 1) for e in args.env_new)
            procs[k] = subprocess.Popen(
                [str(tree / ".venv/bin/python"), str(WORKER),
                 database_url_for(server.url, prefixes[k].replace("-", "_")), broker.bootstrap,
                 prefixes[k], args.mode, args.n, args.rate, args.chunk],
                cwd=tree, stdout=subprocess.PIPE, env=env)
        out = {k: json.loads(p.communicate()[0]) for k, p in procs.items()}
        b1 = sum(java.cpu_times()[:2])
    finally:
        broker.stop()
        server.stop()
    print(f"{args.n} rows, mode {args.mode}"
          + (f" ({args.rate} rows/s in writes of {args.chunk})" if args.mode == "rate" else ""))
    for k, r in out.items():
        print(f"  {k}: {r['ms_per_record'] * 1000:.1f} µs CPU per record in the relay's thread, "
              f"{r['process_ms_per_record'] * 1000:.1f} in its process "
              f"({r['wall']:.1f} s wall; {r['tree']})")
    rows = sum(r["rows"] for r in out.values())
    print(f"  broker: {(b1 - b0) / rows * 1e6:.1f} µs per record of both sides "
          "(from the old side's start to the later side's end)")


if __name__ == "__main__":
    main()
