"""One result per request through assessment's ASGI app, in process: no network, no
database, no broker — the HTTP stack's and the ingest route's own CPU per request.

    uv run python bench/e2e/asgi_ingest.py                   # 20,000 requests, 16 at once
    uv run python bench/e2e/asgi_ingest.py --cprofile 30     # + the 30 costliest functions
    uv run python bench/e2e/asgi_ingest.py --batch 1000      # batches: CPU per result
    uv run python bench/e2e/asgi_ingest.py --database        # flushes on a real PostgreSQL
    cd /tmp/old && uv run python /path/to/bench/e2e/asgi_ingest.py   # another checkout

The app is the one `microcred_assessment.main.build` makes (every middleware, the
problem handlers, the real routes, authentication with the real key verifier, the real
ingest check and group commit), wrapped in uvicorn's proxy-headers middleware as
`runtime.serve` runs it, on uvloop. Only the I/O is replaced: the verified API keys are
in the verifier's cache (as they are after a key's first request), the catalogue is the
seed's, and a flush "commits" after `--flush-ms` without a database. Requests are the
bench's workload (`run.build_workload`), sent as uvicorn hands them to the app.

With `--database` the flushes are real: an embedded PostgreSQL is started for the run,
assessment's migrations and seed applied, and the group commit's statement sent to it
(the relay only counted, not run): the CPU figure then includes the flush's client side,
its connection handling included, but not the server's.

It imports only what every recent checkout has, so the same file measures an older tree
(run it with that tree's environment); the figure to compare is the CPU per request of two
runs side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
PATH = "/v1/assessment-results"
BATCH_PATH = "/v1/assessment-results:batch"


def _app(flush_s: float, engine: Any = None) -> tuple[Any, dict[str, str]]:
    from microcred_assessment.main import build
    from microcred_assessment.results.ingest import IngestStore, Stored
    from microcred_shared.auth import digest
    from microcred_shared.catalog import load_catalog

    app, rt = build()

    class NoDatabase(IngestStore):
        async def _write(self, items: list[Any]) -> list[Stored]:
            await asyncio.sleep(flush_s)  # the statement's round trip, no CPU
            return [Stored("accepted", i.event_id) for i in items]

    class Relay:
        def wake(self) -> None:
            pass

    rt.engine = engine or object()  # type: ignore[assignment]  # audits (none here), flushes
    rt.relay = Relay()  # type: ignore[assignment]
    store = IngestStore if engine is not None else NoDatabase
    rt.ingest = store(rt.engine, rt.relay.wake)  # type: ignore[arg-type]
    rt.catalog = SimpleNamespace(current=load_catalog(rt.settings.seed_file))  # type: ignore
    from microcred_shared.auth import KeyVerifier

    rt.key_verifier = KeyVerifier(rt.engine)  # type: ignore[arg-type]
    keys = {}
    for n, provider in enumerate(sorted(p.id for p in rt.catalog.current.providers)):
        key_id, secret = f"bench{n:04d}", f"secret-{n}-" + "x" * 32
        keys[provider] = f"mcp_{key_id}.{secret}"
        # as after the key's first request: verified, cached
        rt.key_verifier._cache[(key_id, digest(secret))] = (float("inf"), provider)

    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1"), keys


def _scope(body: bytes, token: str, path: str = PATH) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "server": ("127.0.0.1", 8101),
            "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
            "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8101"), (b"accept", b"*/*"),
                        (b"accept-encoding", b"gzip, deflate"),
                        (b"connection", b"keep-alive"),
                        (b"authorization", f"Bearer {token}".encode()),
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "state": {}}


async def _run(app: Any, requests: list[tuple[bytes, str]], clients: int,
               path: str = PATH) -> list[int]:
    statuses: list[int] = []
    nxt = iter(requests)

    async def client() -> None:
        for body, token in nxt:
            pending = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive(pending: list[dict[str, Any]] = pending) -> dict[str, Any]:
                if pending:
                    return pending.pop()
                await asyncio.Event().wait()  # the client stays connected
                raise AssertionError

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
                elif path == BATCH_PATH and b'"refused":0,' not in message.get("body", b""):
                    statuses.append(-1)  # a result of the batch was refused

            await app(_scope(body, token, path), receive, send)

    await asyncio.gather(*(client() for _ in range(clients)))
    return statuses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="results per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=16, help="requests in flight at once")
    ap.add_argument("--flush-ms", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=0, metavar="N",
                    help="post batches of N results (one provider each) to the batch "
                    "endpoint instead of one result per request; CPU is per result")
    ap.add_argument("--cprofile", type=int, metavar="TOP", default=0,
                    help="profile one round and print the TOP functions")
    ap.add_argument("--database", action="store_true",
                    help="flush to an embedded PostgreSQL started for the run")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import run  # bench/e2e/run.py: the workload http_ingest.py sends
    import uvloop

    from microcred_shared.contract import events as contract

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    pg, engine = None, None
    if args.database:
        pg, engine = _database(loop)
    try:
        return _measure(args, loop, engine, run, contract)
    finally:
        if engine is not None:
            loop.run_until_complete(engine.dispose())
        if pg is not None:
            _drop(*pg)


def _database(loop: Any) -> tuple[Any, Any]:
    import tempfile

    from microcred_assessment.catalogue.seed import import_seed, load_seed
    from microcred_assessment.models import MIGRATIONS
    from microcred_devstack.postgres import ensure_databases_async, start_postgres
    from microcred_shared.db import make_engine, migrate
    from microcred_shared.settings import REPO_ROOT, database_url_for

    state = Path(tempfile.mkdtemp(prefix="asgi-ingest-"))
    pg = start_postgres(state)
    try:
        loop.run_until_complete(ensure_databases_async(pg.url, ["asgi_ingest"]))
        engine = make_engine(database_url_for(pg.url, "asgi_ingest"))
        loop.run_until_complete(migrate(engine, MIGRATIONS))
        loop.run_until_complete(import_seed(
            engine, load_seed(REPO_ROOT / "deploy" / "seed" / "providers.json")))
    except BaseException:
        _drop(state, pg)
        raise
    return (state, pg), engine


def _drop(state: Path, pg: Any) -> None:
    """Stop the run's server and delete its files."""
    import shutil

    from microcred_devstack.pg_embedded import remove_server

    pg.stop()
    if pg.embedded:
        remove_server(state)
        shutil.rmtree(state, ignore_errors=True)


def _measure(args: Any, loop: Any, engine: Any, run: Any, contract: Any) -> int:
    app, keys = _app(args.flush_ms / 1000, engine)
    # As `runtime.serve` leaves a service's heap once its app is built (where it does):
    # start-up's objects frozen, young collections rarer.
    from microcred_shared import runtime as shared_runtime

    settle = getattr(shared_runtime, "settle_heap", None)
    if settle is not None:
        settle()
    per_request = []
    for r in range(args.rounds + 1):  # round 0 warms up
        events = run.build_workload(args.n, f"asgi{r}").events
        if args.batch:
            by_provider: dict[str, list[bytes]] = {}
            for e in events:
                by_provider.setdefault(e.provider_id, []).append(e.model_dump_json().encode())
            requests = [(b'{"results":[' + b",".join(bodies[s:s + args.batch]) + b"]}",
                         keys[provider]) for provider, bodies in by_provider.items()
                        for s in range(0, len(bodies), args.batch)]
        else:
            requests = [(e.model_dump_json().encode(), keys[e.provider_id]) for e in events]
        # Building the workload checked its learners' addresses, and the contract remembers
        # the ones it accepted: the service has seen none of them (a new learner per result).
        forget = getattr(contract, "_checked_email", None)
        if forget is not None:
            forget.cache_clear()
        if r == 1 and args.cprofile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
        cpu = time.process_time()
        statuses = loop.run_until_complete(_run(
            app, requests, min(args.clients, len(requests)) if args.batch else args.clients,
            BATCH_PATH if args.batch else PATH))
        cpu = time.process_time() - cpu
        if r == 1 and args.cprofile:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(args.cprofile)
            pstats.Stats(prof).sort_stats("cumtime").print_stats(args.cprofile)
            continue
        ok = 200 if args.batch else 202
        bad = [s for s in statuses if s != ok]
        if bad or len(statuses) != len(requests):
            raise SystemExit(f"{len(bad)} answers were not {ok}: {bad[:5]}")
        if r:
            per_request.append(cpu / args.n * 1e6)
            print(f"round {r}: {per_request[-1]:.1f} µs CPU per result", flush=True)
    what = f"batches of {args.batch}" if args.batch else "one result per request"
    print(f"{what} through the app: median {statistics.median(per_request):.1f}"
          f" µs CPU (min {min(per_request):.1f}, max {max(per_request):.1f}) over "
          f"{len(per_request)} rounds of {args.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
