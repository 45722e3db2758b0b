"""HTTP ingest for the end-to-end benchmark: results posted to assessment as a partner
institution's system posts them, one per request or in batches (issue 12, item 2).

    uv run python bench/e2e/run.py --n 10000 --ingest http        # whole flow, HTTP in
    uv run python bench/e2e/run.py --n 10000 --ingest http-batch
    uv run python bench/e2e/http_ingest.py --n 2000              # ingest only, side by side

`run.py --ingest` calls `submit` in place of Kafka publishing; the standalone mode starts
its own stack (or `--reuse-stack`) and measures only the way in: Kafka publishing, one
result per request (from httpx, then from a minimal HTTP/1.1 client that takes less of the
shared cores: `http-raw`) and batches of `--batch` over the same kind of results, one
after the other in the same run, with the CPU each took from assessment and PostgreSQL,
and prints them side by side.

Per request: the time from sending it to its answer (p50/p99). Per result: its submit time
is its request's start, as run.py's chunks are for Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
PATH = "/v1/assessment-results"
BATCH_PATH = "/v1/assessment-results:batch"
BEHIND = ("issuance", "registry", "notify")


def operator_token(target: Any) -> str:
    token = target.env.get("MICROCRED_OPERATOR_TOKEN") or \
        target.manifest.get("env", {}).get("MICROCRED_OPERATOR_TOKEN")
    if not token:
        raise SystemExit("HTTP ingest needs the stack's operator token to mint API keys")
    return str(token)


async def mint_keys(base_url: str, token: str, providers: set[str]) -> dict[str, str]:
    """One fresh API key per provider, minted through the admin API."""
    keys = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        for provider in sorted(providers):
            resp = await client.post(f"/v1/admin/providers/{provider}/api-keys")
            resp.raise_for_status()
            keys[provider] = resp.json()["api_key"]
    return keys


def _check(resp: httpx.Response, expected: int) -> None:
    if resp.status_code != expected:
        raise RuntimeError(f"{resp.request.method} {resp.request.url.path}: "
                           f"{resp.status_code} {resp.text[:300]}")


class RawClient:
    """A minimal HTTP/1.1 client on one keep-alive connection: one request at a time, the
    answer read by its Content-Length. Mode `http-raw`: the server does the same work,
    while the driver, which shares the cores, costs far less than httpx (partners' clients
    do not run on the service's cores)."""

    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\n{head}"
                          f"content-length: {len(body)}\r\n\r\n".encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def post_single(base_url: str | list[str], keys: dict[str, str], events: list[Any], *,
                      clients: int = 16, client: str = "httpx") -> dict[str, Any]:
    """Each result in its own request, from `clients` keep-alive connections (one client
    each, taking the next result as soon as its last one was answered); several base URLs
    (instances of assessment) share the clients in turn."""
    urls = [base_url] if isinstance(base_url, str) else base_url
    turn = iter(range(clients))
    bodies = [(e.provider_id, e.model_dump_json().encode()) for e in events]
    sub, lat = [0.0] * len(events), [0.0] * len(events)
    nxt = iter(range(len(events)))

    async def raw_worker(base_url: str) -> None:
        c = RawClient(base_url)
        try:
            for i in nxt:
                provider, body = bodies[i]
                t, p = time.time(), time.perf_counter()
                status, answer = await c.post(PATH, body, {
                    "authorization": f"Bearer {keys[provider]}",
                    "content-type": "application/json"})
                lat[i] = time.perf_counter() - p
                sub[i] = t
                if status != 202:
                    raise RuntimeError(f"POST {PATH}: {status} {answer[:300]!r}")
        finally:
            await c.close()

    async def worker() -> None:
        base_url = urls[next(turn) % len(urls)]
        if client == "raw":
            await raw_worker(base_url)
            return
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as c:
            for i in nxt:
                provider, body = bodies[i]
                t, p = time.time(), time.perf_counter()
                resp = await c.post(PATH, content=body, headers={
                    "authorization": f"Bearer {keys[provider]}",
                    "content-type": "application/json"})
                lat[i] = time.perf_counter() - p
                sub[i] = t
                _check(resp, 202)

    t0 = time.time()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"submit": sub, "request_latency": lat, "requests": len(events),
            "seconds": time.time() - t0}


async def post_batches(base_url: str, keys: dict[str, str], events: list[Any], *,
                       batch: int = 1000, clients: int = 4) -> dict[str, Any]:
    """Results in batches of at most `batch` (one provider per batch: a key acts only for
    its own provider), from `clients` keep-alive connections."""
    by_provider: dict[str, list[int]] = {}
    for i, e in enumerate(events):
        by_provider.setdefault(e.provider_id, []).append(i)
    chunks: list[tuple[str, list[int], bytes]] = []
    for provider, idx in by_provider.items():
        for s in range(0, len(idx), batch):
            part = idx[s:s + batch]
            body = b"[" + b",".join(events[i].model_dump_json().encode() for i in part) + b"]"
            chunks.append((provider, part, b'{"results":' + body + b"}"))
    chunks.sort(key=lambda c: c[1][0])  # roughly in workload order
    sub = [0.0] * len(events)
    lat: list[float] = []
    nxt = iter(chunks)

    async def worker() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as c:
            for provider, part, body in nxt:
                t, p = time.time(), time.perf_counter()
                resp = await c.post(BATCH_PATH, content=body, headers={
                    "authorization": f"Bearer {keys[provider]}",
                    "content-type": "application/json"})
                lat.append(time.perf_counter() - p)
                _check(resp, 200)
                outcomes = resp.json()["outcomes"]
                bad = [o for o in outcomes if o["outcome"] != "accepted"]
                if bad:
                    raise RuntimeError(f"batch refused items: {bad[:3]}")
                for i in part:
                    sub[i] = t

    t0 = time.time()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"submit": sub, "request_latency": lat, "requests": len(chunks),
            "seconds": time.time() - t0}


async def submit(target: Any, events: list[Any], mode: str, *, clients: int = 16,
                 batch: int = 1000) -> tuple[list[float], list[float], float]:
    """run.py's `publish` over HTTP: (per-result submit time, per-result answer time,
    seconds). Prints requests/s, results/s and the request latency."""
    url = target.service_urls["assessment"]
    keys = getattr(target, "_http_keys", None)
    if keys is None:
        keys = await mint_keys(url, operator_token(target), {e.provider_id for e in events})
        target._http_keys = keys
    if mode == "http":
        res = await post_single(url, keys, events, clients=clients)
    else:
        res = await post_batches(url, keys, events, batch=batch, clients=max(clients // 4, 1))
    print_rates(mode, res, len(events))
    answered = [s + lat for s, lat in zip(res["submit"], res["request_latency"],
                                          strict=False)] if mode == "http" else res["submit"]
    return res["submit"], answered, res["seconds"]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def print_rates(mode: str, res: dict[str, Any], n: int) -> dict[str, float]:
    lat = res["request_latency"]
    out = {"requests_per_s": res["requests"] / res["seconds"],
           "results_per_s": n / res["seconds"], "p50_ms": pct(lat, 50) * 1000,
           "p99_ms": pct(lat, 99) * 1000, "seconds": res["seconds"]}
    print(f"  {mode:<11} {n} results in {res['seconds']:.2f}s: "
          f"{out['requests_per_s']:8.1f} requests/s {out['results_per_s']:8.1f} results/s  "
          f"request p50 {out['p50_ms']:7.1f} ms  p99 {out['p99_ms']:7.1f} ms", flush=True)
    return out


# ------------------------------------------------------------------------------------------
# standalone: the way in only, Kafka and HTTP side by side


async def _ingest_only(target: Any, args: argparse.Namespace) -> dict[str, Any]:
    import run  # bench/e2e/run.py

    profiler = run.Profiler(Path(args.profile), 100, False, gil=True) if args.profile else None

    url = target.service_urls["assessment"]
    run_id = uuid.uuid4().hex[:8]
    modes = args.modes.split(",")
    loads = {m: run.build_workload(args.n, f"{run_id}{m[:1]}{i}")
             for i, m in enumerate(modes)}
    warm = run.build_workload(200, run_id + "w")
    providers = {e.provider_id for e in warm.events}
    keys = await mint_keys(url, operator_token(target), providers)
    await post_single(url, keys, warm.events[:100], clients=args.clients)
    if "http-batch" in modes:
        await post_batches(url, keys, warm.events[100:], batch=args.batch)
    if args.door_only:
        # The services behind assessment stop: what the door alone can take, with the
        # decisions left on Kafka for them (a burst the backbone catches up with later).
        for name in BEHIND:
            target.stack.stop_service(name)
        print(f"--door-only: {', '.join(BEHIND)} stopped")
    urls = [url]
    for number in range(2, args.assessment_instances + 1):
        # Another process of assessment beside the first (its own HTTP port; the consumer
        # group, the database and the outbox's shards shared): the clients take turns.
        proc = target.stack.start_instance("assessment", number, target.env)
        urls.append(target.stack.instance_url("assessment", number))
        print(f"assessment instance {number} (pid {proc.pid}) at {urls[-1]}")
    groups = {"assessment": [target.service_pid("assessment")] +
              [target.stack.instance("assessment", n).pid
               for n in range(2, args.assessment_instances + 1)],
              "postgres (all backends)": [target.postgres_pid()],
              "kafka": [target.kafka_pid()], "bench driver": [os.getpid()]}
    # The services behind the door (issuing what assessment decided) share the cores: their
    # CPU is printed beside, not in the door's total.
    behind = {} if args.door_only else \
        {name: [target.service_pid(name)] for name in BEHIND if target.service_pid(name)}
    if args.behind_nice:
        # The door first: the services behind it yield the cores to it (what a deployment
        # that gives the ingest door its own CPU, or a higher priority, would see). They
        # still issue everything, later.
        for pids in behind.values():
            for pid in pids:
                os.setpriority(os.PRIO_PROCESS, pid, args.behind_nice)
        print(f"issuance, registry and notify at nice {args.behind_nice}")
    out: dict[str, Any] = {}
    # What the stack burns doing nothing (consumers' long polls, the relay's and the
    # catalogue's polls): subtracted below, since a slow mode's window holds more of it.
    await asyncio.sleep(args.settle)
    idle_meter = run.CpuMeter({k: [p for p in v if p] for k, v in groups.items()},
                              {"postgres (all backends)"})
    idle_meter.begin()
    await asyncio.sleep(args.idle)
    idle = idle_meter.end()
    idle_rate = {k: v / idle["wall"] for k, v in idle["cpu"].items()}
    print("idle: " + ", ".join(f"{k} {100 * r:.1f}% of a core" for k, r in idle_rate.items()))
    print(f"\n=== ingest only: {args.n} results per mode, {args.clients} clients "
          f"(batches of {args.batch}) ===")
    for mode in modes:
        await asyncio.sleep(args.settle)  # let the pipeline catch up with the last mode
        meter = run.CpuMeter({k: [p for p in v if p] for k, v in groups.items()},
                             {"postgres (all backends)"})
        behind_meter = run.CpuMeter(behind, set())
        behind_meter.begin()
        import psutil

        sys_start = psutil.cpu_times()
        if args.pg_statements:
            await _statements(target, None)
        meter.begin()
        if profiler:
            profiler.start({"assessment": target.service_pid("assessment")}, mode)
        events = loads[mode].events
        if mode == "kafka":
            sub, ack, seconds = await run.publish(target.bootstrap, events, args.chunk, 0,
                                                  args.inflight)
            res = {"requests": -(-args.n // args.chunk), "seconds": seconds, "submit": sub,
                   "request_latency": [a - s for s, a in zip(sub, ack, strict=True)]}
        elif mode in ("http", "http-raw"):
            res = await post_single(urls, keys, events, clients=args.clients,
                                    client="raw" if mode == "http-raw" else "httpx")
        else:
            res = await post_batches(url, keys, events, batch=args.batch,
                                     clients=max(args.clients // 4, 1))
        # Until assessment decided every one of them: the way in, including what the
        # consumer does with it, costs the same whichever door the results came through.
        t_sent = time.time()
        decided_at = await _wait_decided(target, [e.result_id for e in events], args.timeout)
        usage = meter.end()
        behind_cpu = behind_meter.end()["cpu"] if behind else {}
        usage["busy"] = run.machine_busy_fraction(sys_start, psutil.cpu_times())
        if args.pg_statements:
            await _statements(target, args.n)
        if profiler:
            profiler.stop()
            for name, path in sorted(profiler.files.items()):
                run.print_profile(f"{mode}: {name}", run.analyse_profile(path, 100, 25), 25,
                                  usage["cpu"].get(name))
            profiler.files = {}
        rates = print_rates(mode, res, args.n)
        t_first = min(res["submit"]) if res.get("submit") else t_sent - res["seconds"]
        rates["decided_per_s"] = args.n / max(decided_at - t_first, 1e-9)
        print(f"    all {args.n} decided {decided_at - t_sent:.2f}s after the last answer: "
              f"{rates['decided_per_s']:.1f} results/s submitted -> decided")
        cpu = usage["cpu"]
        print("    CPU per result: " + ", ".join(
            f"{k} {1000 * v / args.n:.3f} ms" for k, v in cpu.items()) +
            f"; machine busy {100 * usage.get('busy', float('nan')):.0f}%")
        above = {k: max(v - idle_rate.get(k, 0.0) * usage["wall"], 0.0) / args.n * 1000
                 for k, v in cpu.items()}
        total = sum(above.values())
        print("    above idle: " + ", ".join(f"{k} {v:.3f} ms" for k, v in above.items()) +
              f"; total {total:.2f} ms per result = {2000 / total:.0f} results/s on 2 cores")
        split = usage.get("by_database", {}).get("postgres (all backends)", {})
        if split:
            print("    PostgreSQL by database: " + ", ".join(
                f"{k} {1000 * v / args.n:.3f} ms" for k, v in sorted(split.items())))
        if behind_cpu:
            print("    behind the door (not in the total): " + ", ".join(
                f"{k} {1000 * v / args.n:.3f} ms" for k, v in behind_cpu.items()) +
                " per result in the same window")
        out[mode] = {**rates, "cpu_ms_per_result": {k: 1000 * v / args.n
                                                     for k, v in cpu.items()},
                     "behind_cpu_ms_per_result": {k: 1000 * v / args.n
                                                  for k, v in behind_cpu.items()},
                     "cpu_ms_per_result_above_idle": above, "wall": usage["wall"],
                     "machine_busy": usage["busy"]}
    print_side_by_side(out, args)
    return out


def print_side_by_side(out: dict[str, Any], args: argparse.Namespace) -> None:
    """The modes in one table: requests/s, the request latency, and CPU per result."""
    print(f"\n=== side by side: {args.n} results per mode, {args.clients} keep-alive clients "
          f"(batches of {args.batch}; Kafka in chunks of {args.chunk}) ===")
    print(f"  {'mode':<11} {'requests/s':>10} {'results/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'CPU/result above idle, ms: total':>33} {'w/o driver':>10} {'assessment':>10}"
          f" {'postgres':>8} {'behind':>7} {'busy':>5}")
    for mode, r in out.items():
        above = r["cpu_ms_per_result_above_idle"]
        total = sum(above.values())
        print(f"  {mode:<11} {r['requests_per_s']:10.1f} {r['results_per_s']:10.1f} "
              f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {total:33.3f} "
              f"{total - above.get('bench driver', 0.0):10.3f} "
              f"{above.get('assessment', float('nan')):10.3f} "
              f"{above.get('postgres (all backends)', float('nan')):8.3f} "
              f"{sum(r['behind_cpu_ms_per_result'].values()):7.3f} "
              f"{100 * r['machine_busy']:4.0f}%")
    print("  (the machine's busy share includes work that was not ours; requests/s is for "
          "the machine as it was, CPU per result holds up better on a shared one; `behind`: "
          "issuance, registry and notify issuing the decided results in the same window, "
          "not in the total: their PostgreSQL and Kafka work is)")


async def _statements(target: Any, n: int | None) -> None:
    """`--pg-statements`: reset the counts (n None), or print assessment's statements per
    result since the reset (the bench's own progress query included)."""
    import asyncpg

    conn = await asyncpg.connect(target.db_url("assessment"))
    try:
        if n is None:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.execute("SELECT pg_stat_statements_reset()")
            return
        rows = await conn.fetch(
            "SELECT s.calls, s.rows, s.mean_exec_time, s.query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
            "ORDER BY s.calls DESC")
    finally:
        await conn.close()
    print(f"    assessment's statements per result: {sum(r['calls'] for r in rows) / n:.3f}")
    for r in rows[:12]:
        print(f"      {r['calls'] / n:7.3f} ({r['rows'] / max(r['calls'], 1):6.1f} rows, "
              f"{r['mean_exec_time']:6.2f} ms) {' '.join(r['query'].split())[:90]}")


async def _wait_decided(target: Any, result_ids: list[str], limit: float) -> float:
    """When the last of `result_ids` was decided (assessment's `results` table)."""
    import asyncpg

    conn = await asyncpg.connect(target.db_url("assessment"))
    try:
        deadline = time.monotonic() + limit
        while True:
            n = await conn.fetchval("SELECT count(*) FROM results WHERE result_id = ANY($1)",
                                    result_ids)
            if n >= len(result_ids) or time.monotonic() > deadline:
                if n < len(result_ids):
                    print(f"    only {n}/{len(result_ids)} decided before the timeout")
                return time.time()
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def main() -> int:
    sys.path.insert(0, str(HERE))
    import run

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="results per mode (default 2000)")
    ap.add_argument("--modes", default="kafka,http,http-raw,http-batch",
                    help="of kafka, http (one result per request, httpx), http-raw (the "
                    "same requests from a minimal HTTP/1.1 client: less of the shared "
                    "cores for the driver), http-batch")
    ap.add_argument("--clients", type=int, default=16, help="keep-alive HTTP clients")
    ap.add_argument("--batch", type=int, default=1000, help="results per batch request")
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--settle", type=float, default=3.0, help="pause between modes (s)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per mode (s)")
    ap.add_argument("--idle", type=float, default=5.0, help="idle probe before the modes (s)")
    ap.add_argument("--pg-statements", action="store_true",
                    help="own stack only: count assessment's statements per result by mode")
    ap.add_argument("--door-only", action="store_true",
                    help="own stack only: stop issuance, registry and notify first, so the "
                    "door and assessment's decisions have the cores to themselves")
    ap.add_argument("--behind-nice", type=int, default=0, metavar="N",
                    help="own stack only: run issuance, registry and notify at nice N (the "
                    "door's process and PostgreSQL and Kafka unchanged)")
    ap.add_argument("--assessment-instances", type=int, default=1, metavar="N",
                    help="own stack only: N processes of assessment, the one-per-request "
                    "clients spread over them")
    ap.add_argument("--reuse-stack", action="store_true")
    ap.add_argument("--state-dir", default=None)
    ap.add_argument("--keep-state", action="store_true")
    ap.add_argument("--profile", metavar="DIR", default=None,
                    help="py-spy assessment in each mode (uv run --with py-spy ...)")
    args = ap.parse_args()
    # what run.start_own_stack reads
    args.otlp, args.batch_size, args.cryptosuite = False, None, "rdfc"
    args.smtp_sink, args.set = "lean", []
    target = None
    try:
        target = run.reuse_stack(args) if args.reuse_stack else \
            run.start_own_stack(args, "rdfc")
        out = asyncio.run(_ingest_only(target, args))
        print(json.dumps(out, indent=2))
    finally:
        run.cleanup(target, None, args.keep_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
