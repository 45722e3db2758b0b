"""Scale-out benchmark: one instance per service against two, each instance under the same
fixed CPU quota (cgroup v1), the stage under test held tighter than the rest.

    uv run python bench/scale/run.py                        # issuance is the bottleneck
    uv run python bench/scale/run.py --n 3000 --plan 1,2,1  # A/B/A: drift shows as A != A
    uv run python bench/scale/run.py --bottleneck notify=0.15

What it does (bench/scale/README.md has the method and the figures):

1. Starts its own stack in a temp state dir (Kafka, embedded PostgreSQL, a counting SMTP
   sink, the four services), as bench/e2e/run.py does; needs root and cgroup v1's cpu
   controller at /sys/fs/cgroup/cpu (the machine notes of this repo's helpers).
2. For each step of --plan (instances per service), starts or stops the extra instances of
   every service (devstack `Stack.start_instance`), and puts every service instance in its
   own cgroup `microcred-scale-<service>-<n>` with `cpu.cfs_quota_us` = quota x period:
   --quota for every instance, --bottleneck for the stage under test. Kafka, PostgreSQL
   and the driver are not limited. Instances start unlimited (imports and migrations) and
   are moved into their group once healthy.
3. Warms up (--warmup results, which also waits out the consumer-group rebalance), then
   publishes --n passing results as fast as Kafka takes them and waits until notify has
   mailed every one: throughput = n / (last mail - first submit). It prints, per step, the
   throughput, each group's CPU and how long the kernel throttled it (the stage at its
   quota is the bottleneck), and the ratio of each step to the first.

Not a pytest test. Cleans up the cgroups and the stack it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVICES = ("assessment", "issuance", "registry", "notify")
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


def _e2e() -> Any:
    """bench/e2e/run.py: its SMTP sink, workload and publisher (one implementation)."""
    spec = importlib.util.spec_from_file_location("bench_e2e_run", HERE.parent / "e2e" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_e2e_run"] = module
    spec.loader.exec_module(module)
    return module


e2e = _e2e()
log = e2e.log


# ------------------------------------------------------------------------------------------
# cgroup v1 cpu groups


@dataclass
class CpuGroup:
    name: str
    quota: float  # cores
    shares: int = 1024  # the kernel's default weight: no priority over the neighbours

    @property
    def path(self) -> Path:
        return CGROUP_CPU / self.name

    def create(self) -> CpuGroup:
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(int(self.quota * PERIOD_US)))
        (self.path / "cpu.shares").write_text(str(self.shares))
        return self

    def add(self, pid: int) -> None:
        """The process and its children (cgroup.procs moves every thread of a process)."""
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(ProcessLookupError, OSError):
                (self.path / "cgroup.procs").write_text(str(p.pid))

    def stat(self) -> dict[str, int]:
        out = {}
        for line in (self.path / "cpu.stat").read_text().splitlines():
            k, v = line.split()
            out[k] = int(v)
        return out

    def remove(self) -> None:
        if not self.path.exists():
            return
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def check_cgroups() -> None:
    if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
        raise SystemExit(f"needs cgroup v1's cpu controller at {CGROUP_CPU}")
    if os.geteuid() != 0:
        raise SystemExit("needs root to create cgroups")


# ------------------------------------------------------------------------------------------
# the stack


@dataclass
class Bench:
    args: argparse.Namespace
    stack: Any = None
    smtp: Any = None
    env: dict[str, str] = field(default_factory=dict)
    groups: dict[tuple[str, int], CpuGroup] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)  # instances per service

    def quota(self, service: str) -> float:
        return self.args.bottleneck_quota if service == self.args.bottleneck else self.args.quota

    def start(self) -> None:
        from microcred_devstack import Stack, free_port

        state = Path(tempfile.mkdtemp(prefix="microcred-scale-"))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")
                    and k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
                    and not k.startswith("MICROCRED_")}
        self.stack = Stack(state, free_ports=True, env=base_env)
        log(f"starting Kafka + PostgreSQL in {state}")
        self.stack.start_infra()
        self.smtp = e2e.CountingSmtp(free_port()).start()
        self.env = e2e.service_env(self.smtp.controller.port, "rdfc", None, None)

    def pid(self, service: str, number: int) -> int:
        pid = self.stack.instance(service, number).pid
        assert pid, f"{service}-{number} is not running"
        return int(pid)

    def scale_to(self, count: int) -> None:
        t = time.monotonic()
        new = []
        for service in SERVICES:
            for number in range(self.running.get(service, 0) + 1, count + 1):
                self.stack.start_instance(service, number, self.env, wait=False)
                new.append((service, number))
            for number in range(count + 1, self.running.get(service, 0) + 1):
                self.stack.instance(service, number).terminate()
                self.groups.pop((service, number)).remove()
            self.running[service] = count
        for service, number in new:
            self.stack.instance(service, number, self.env).wait_healthy(
                self.stack.instance_url(service, number) + "/healthz", 240)
            group = CpuGroup(f"microcred-scale-{service}-{number}", self.quota(service),
                             self.args.shares).create()
            group.add(self.pid(service, number))
            self.groups[(service, number)] = group
        log(f"{count} instance(s) per service in {time.monotonic() - t:.1f}s; quotas: "
            + ", ".join(f"{s} {self.quota(s):.2f} core" for s in SERVICES) + " per instance")

    def stop(self) -> None:
        for group in self.groups.values():
            group.remove()
        if self.stack is not None:
            self.stack.down(purge=True)
        if self.smtp is not None:
            self.smtp.stop()


# ------------------------------------------------------------------------------------------
# one measured step


async def delivered(conn: asyncpg.Connection, prefix: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM notifications WHERE recipient LIKE $1 "
                                   "AND status = 'delivered'", prefix + "%"))


async def run_load(bench: Bench, n: int, limit: float) -> dict[str, Any]:
    wl = e2e.build_workload(n, uuid.uuid4().hex[:8])
    conn = await asyncpg.connect(bench.stack.database_url.rsplit("/", 1)[0] + "/microcred_notify")
    try:
        t0 = time.time()
        pub = asyncio.create_task(e2e.publish(bench.stack.bootstrap, wl.events, 500, 0.0, 4))
        deadline = time.monotonic() + limit
        done = 0
        while done < n and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            done = await delivered(conn, wl.prefix)
        await pub
        last = await conn.fetchval(
            "SELECT extract(epoch from max(delivered_at)) FROM notifications "
            "WHERE recipient LIKE $1 AND status = 'delivered'", wl.prefix + "%")
    finally:
        await conn.close()
    span = (float(last) if last else time.time()) - t0
    return {"n": n, "delivered": done, "seconds": span, "rate": done / span if span else 0.0}


async def step(bench: Bench, count: int) -> dict[str, Any]:
    bench.scale_to(count)
    args = bench.args
    log(f"warm-up: {args.warmup} results")
    await run_load(bench, args.warmup, args.timeout)
    before = {k: g.stat() for k, g in bench.groups.items()}
    cpu0 = {k: _cpu(bench.pid(*k)) for k in bench.groups}
    busy0 = psutil.cpu_times()
    log(f"measuring: {args.n} results with {count} instance(s) per service")
    res = await run_load(bench, args.n, args.timeout)
    busy = e2e.machine_busy_fraction(busy0, psutil.cpu_times())
    after = {k: g.stat() for k, g in bench.groups.items()}
    per_group = {}
    for key, group in bench.groups.items():
        throttled = (after[key]["throttled_time"] - before[key]["throttled_time"]) / 1e9
        periods = after[key]["nr_periods"] - before[key]["nr_periods"]
        hit = after[key]["nr_throttled"] - before[key]["nr_throttled"]
        per_group[f"{key[0]}-{key[1]}"] = {
            "quota": group.quota, "cpu_s": _cpu(bench.pid(*key)) - cpu0[key],
            "throttled_s": throttled, "throttled_periods": hit / periods if periods else 0.0}
    res.update(instances=count, groups=per_group, machine_busy=busy,
               loadavg=os.getloadavg())
    report_step(res)
    return res


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def report_step(res: dict[str, Any]) -> None:
    print(f"\n  {res['instances']} instance(s) per service: {res['delivered']}/{res['n']} "
          f"mailed in {res['seconds']:.1f}s = {res['rate']:.1f} credentials/s "
          f"(machine {100 * res['machine_busy']:.0f}% busy, load {res['loadavg'][0]:.1f})")
    print(f"    {'instance':<14} {'quota':>6} {'CPU core-s':>10} {'% of quota':>10} "
          f"{'throttled periods':>18}")
    for name, g in res["groups"].items():
        share = g["cpu_s"] / max(res["seconds"] * g["quota"], 1e-9)
        print(f"    {name:<14} {g['quota']:6.2f} {g['cpu_s']:10.1f} {100 * share:9.0f}% "
              f"{100 * g['throttled_periods']:17.0f}%")


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = results[0]
    print("\n== scale-out: throughput per step (same per-instance quotas; "
          f"{args.bottleneck} at {args.bottleneck_quota} core, the others at {args.quota})")
    for res in results:
        print(f"  {res['instances']} instance(s) per service: {res['rate']:8.1f} credentials/s"
              f"  ratio to step 1: {res['rate'] / base['rate']:.2f}x"
              f"  (machine {100 * res['machine_busy']:.0f}% busy)")
    ones = [r["rate"] for r in results if r["instances"] == 1]
    twos = [r["rate"] for r in results if r["instances"] == 2]
    if ones and twos:
        ratio = (sum(twos) / len(twos)) / (sum(ones) / len(ones))
        print(f"  two instances / one instance (means): {ratio:.2f}x")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="results per measured step")
    ap.add_argument("--warmup", type=int, default=200, help="results before each step")
    ap.add_argument("--plan", default="1,2,1", help="instances per service, step by step")
    ap.add_argument("--quota", type=float, default=0.6,
                    help="CPU quota (cores) of every instance")
    ap.add_argument("--bottleneck", default="issuance=0.15",
                    help="SERVICE=CORES: the stage under test, held tighter")
    ap.add_argument("--shares", type=int, default=1024,
                    help="cpu.shares of every instance's group (1024: no priority); on a "
                    "crowded machine a higher weight lets the instances reach their quotas")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per load")
    ap.add_argument("--out", default=None, help="where to write summary.json")
    args = ap.parse_args()
    service, _, cores = args.bottleneck.partition("=")
    if service not in SERVICES or not cores:
        ap.error(f"--bottleneck SERVICE=CORES, SERVICE one of {', '.join(SERVICES)}")
    args.bottleneck, args.bottleneck_quota = service, float(cores)
    args.steps = [int(x) for x in args.plan.split(",")]
    return args


async def amain(bench: Bench) -> list[dict[str, Any]]:
    return [await step(bench, count) for count in bench.args.steps]


def main() -> int:
    args = parse_args()
    check_cgroups()
    print(json.dumps({"machine": e2e.machine(), "plan": args.steps, "n": args.n,
                      "quota": args.quota, "shares": args.shares, "bottleneck": args.bottleneck,
                      "bottleneck_quota": args.bottleneck_quota}))
    bench = Bench(args)
    try:
        bench.start()
        results = asyncio.run(amain(bench))
    finally:
        bench.stop()
    report(results, args)
    out = Path(args.out) if args.out else HERE / "out" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nsummary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
