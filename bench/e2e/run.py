"""End-to-end benchmark of the microcred backbone, with a bare-broker baseline in the same run.

    uv run python bench/e2e/run.py --n 10000
    uv run --with py-spy python bench/e2e/run.py --n 10000 --profile

What it does (see bench/e2e/README.md for the method and how to read the output):

1. Starts its own stack in a temp state dir (Kafka, embedded PostgreSQL, an in-process SMTP
   sink that only counts, the four services as separate processes) or, with --reuse-stack,
   uses `.state/stack.json` of a running `make up`.
2. Warms the backbone (--warmup, default 10,000 results through all four services, measured
   apart and printed as the "cold" line, then a CHECKPOINT; --warmup 0: a cold backbone).
   Then publishes N passing results (mixed providers/definitions, unique learners) onto Kafka as
   a provider does (ProviderPublisher.publish_many, in chunks, as fast as it can), records
   each result's submit time, and waits until notify has recorded every notification as
   delivered. Per-item latency = notifications.delivered_at (looked up per recipient, i.e.
   per learner e-mail) - submit time of that learner's result. Per-stage timestamps come from
   each service's own database (results.decided_at, issued_credentials.issued_at,
   credentials.registered_at, notifications.delivered_at), joined by learner key.
3. Baseline: the same N payloads (same bytes, same headers, same keys) relayed through four
   hops by plain aiokafka doing no work: producer -> hop0 -> relay1 -> hop1 -> ... -> relay4
   -> hop4, each relay a consumer (own group) + producer in its own process, committing its
   offsets after each forwarded batch, as the services do.
4. --profile: py-spy records every service process during the measured window; the top
   hotspots per service are printed (and the raw stacks kept in the output dir).

Not a pytest test. Bounded by --timeout; cleans up everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import multiprocessing as mp
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from microcred_testkit.machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stalls  # noqa: E402  (beside this file)
import tail  # noqa: E402  (beside this file)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVICES = ("assessment", "issuance", "registry", "notify")
STALL_LOG_MS = 50
SEED = REPO / "deploy" / "seed" / "providers.json"
SUITES = {"rdfc": "eddsa-rdfc-2022", "jcs": "eddsa-jcs-2022"}
HOPS = 4


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------
# statistics helpers


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def dist(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99), "max": max(values) if values else float("nan"),
            "mean": statistics.fmean(values) if values else float("nan")}


def fmt_s(x: float) -> str:
    if x != x:  # nan
        return "   n/a"
    return f"{x * 1000:6.0f}ms" if x < 1 else f"{x:6.2f}s"


def throughput(times: list[float], start: float) -> dict[str, float]:
    """N / (last - start), plus the steady rate between the 10th and 90th percentile item."""
    if not times:
        return {"rate": 0.0, "steady": 0.0, "first": float("nan"), "last": float("nan")}
    s = sorted(times)
    n = len(s)
    span = s[-1] - start
    i10, i90 = int(n * 0.1), max(int(n * 0.9) - 1, 0)
    steady_span = s[i90] - s[i10]
    return {"rate": n / span if span > 0 else float("inf"),
            "steady": (i90 - i10) / steady_span if steady_span > 0 else float("nan"),
            "first": s[0] - start, "last": s[-1] - start}


# ------------------------------------------------------------------------------------------
# machine


def machine() -> dict[str, Any]:
    model = cpu_model()
    mem = psutil.virtual_memory()
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "cpu_model": model, "mem_total_gib": round(mem.total / 2**30, 1),
            "mem_available_gib": round(mem.available / 2**30, 1),
            "loadavg": os.getloadavg(), "kernel": platform.release(),
            "python": platform.python_version()}


# ------------------------------------------------------------------------------------------
# SMTP sink: a real SMTP server (aiosmtpd) that only counts and timestamps recipients


class CountingSmtp:
    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.received: dict[str, float] = {}
        self.messages = 0
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          hostname: str, responses: list[str]) -> list[str]:
        # Offers PIPELINING (RFC 2920) as production relays do; aiosmtpd serves it as is.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]  # before the last line

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        now = time.time()
        self.messages += 1
        for rcpt in envelope.rcpt_tos:
            self.received.setdefault(rcpt.lower(), now)
        return "250 OK"

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> CountingSmtp:
        self.controller.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.controller.stop()


class LeanSmtp:
    """The benchmark's default SMTP sink: an SMTP responder on its own thread and event
    loop that counts and timestamps recipients like `CountingSmtp` and does nothing else.

    It stands in for the organisation's mail relay, which runs on other machines: its CPU
    is not the backbone's, yet here it shares the two cores. aiosmtpd (`--smtp-sink
    aiosmtpd`) spent ~0.5 ms more CPU per mail than this on the 2-core machine
    (`bench/e2e/README.md`, the tenth session), a quarter of a core at 500 mails/s taken
    from the services being measured. It speaks what a relay must to notify's client: the
    greeting, EHLO (PIPELINING, 8BITMIME, SMTPUTF8) or HELO, MAIL, RCPT, DATA with the
    dot-terminated content, RSET, NOOP and QUIT; anything else gets 502. The tests' mail
    server stays aiosmtpd (testkit)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: dict[str, float] = {}
        self.messages = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="smtp-sink")

    def accepted(self, recipients: list[str]) -> None:
        now = time.time()  # the moment the mail's content ended: accepted by the relay
        self.messages += 1
        for rcpt in recipients:
            self.received.setdefault(rcpt.lower(), now)

    def start(self) -> LeanSmtp:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._loop.create_server(
            lambda: _SinkSession(self), "127.0.0.1", self.port), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


class _SinkSession(asyncio.Protocol):
    """One SMTP session of `LeanSmtp`: commands and pipelined groups of them answered in
    order, the content read up to its CRLF "." CRLF."""

    EHLO = b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"

    def __init__(self, sink: LeanSmtp) -> None:
        self._sink = sink
        self._buf = bytearray()
        self._in_data = False
        self._rcpts: list[str] = []
        self._transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        buf, out = self._buf, []
        buf += data
        while True:
            if self._in_data:
                end = buf.find(b"\r\n.\r\n")
                if end < 0:
                    break
                del buf[:end + 5]
                self._in_data = False
                self._sink.accepted(self._rcpts)
                self._rcpts = []
                out.append(b"250 OK\r\n")
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[:nl]).rstrip(b"\r")
            del buf[:nl + 1]
            verb = line[:4].upper()
            if verb == b"EHLO":
                out.append(self.EHLO)
            elif verb == b"HELO":
                out.append(b"250 bench-sink\r\n")
            elif verb == b"MAIL":
                self._rcpts = []
                out.append(b"250 OK\r\n")
            elif verb == b"RCPT":
                start, end = line.find(b"<"), line.rfind(b">")
                self._rcpts.append(line[start + 1:end].decode("utf-8", "replace"))
                out.append(b"250 OK\r\n")
            elif verb == b"DATA" and self._rcpts:
                self._in_data = True
                # The content's end is CRLF "." CRLF; an empty content is "." CRLF at once.
                buf[:0] = b"\r\n"
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"DATA":
                out.append(b"503 RCPT first\r\n")
            elif verb in (b"RSET", b"NOOP"):
                if verb == b"RSET":
                    self._rcpts = []
                out.append(b"250 OK\r\n")
            elif verb == b"QUIT":
                self._transport.write(b"".join(out) + b"221 Bye\r\n")
                self._transport.close()
                return
            else:
                out.append(b"502 Not implemented\r\n")
        if out:
            self._transport.write(b"".join(out))


# ------------------------------------------------------------------------------------------
# the stack under test


@dataclass
class Target:
    bootstrap: str
    server_url: str  # postgresql://.../postgres
    service_urls: dict[str, str]
    stack: Any = None  # microcred_devstack.Stack when we started it
    smtp: CountingSmtp | LeanSmtp | None = None
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    reused: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    def db_url(self, service: str) -> str:
        return self.server_url.rsplit("/", 1)[0] + f"/microcred_{service}"

    def service_pid(self, name: str) -> int | None:
        if self.stack is not None:
            return self.stack.service(name).pid
        pid = self.manifest.get("services", {}).get(name, {}).get("pid")
        return int(pid) if pid else None

    def kafka_pid(self) -> int | None:
        if self.stack is not None and self.stack.kafka is not None:
            return self.stack.kafka.pid
        pid = self.manifest.get("kafka", {}).get("pid")
        return int(pid) if pid else None

    def postgres_pid(self) -> int | None:
        if self.stack is not None and self.stack.pg is not None:
            return self.stack.pg.pid
        pid = self.manifest.get("postgres", {}).get("pid")
        return int(pid) if pid else None


def service_env(smtp_port: int, suite: str, otlp: str | None, batch: int | None) -> dict[str, str]:
    """The env tests/e2e/conftest.py gives the services, minus OTLP export unless asked."""
    env = {
        "MICROCRED_SMTP_PORT": str(smtp_port),
        "MICROCRED_OPERATOR_TOKEN": secrets.token_urlsafe(24),
        "MICROCRED_NOTIFY_RETRY_BASE_SECONDS": "0.2",
        "MICROCRED_CRYPTOSUITE": SUITES[suite],
        # each service logs every stall of its event loop this long (bench/e2e/stalls.py)
        "MICROCRED_LOOP_STALL_LOG_MS": str(STALL_LOG_MS),
    }
    if otlp:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
        env["OTEL_BSP_SCHEDULE_DELAY"] = "200"
    if batch:
        env["MICROCRED_BATCH_SIZE"] = str(batch)
    return env


def _setting(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return text


def start_own_stack(args: argparse.Namespace, suite: str) -> Target:
    from microcred_devstack import Stack, free_port

    state = Path(tempfile.mkdtemp(prefix="microcred-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")
                and k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
                and not k.startswith("MICROCRED_")}
    if args.pg_statements:  # read by microcred_devstack.pg_embedded when it starts the server
        os.environ["MICROCRED_PG_OPTIONS"] = ("-c shared_preload_libraries=pg_stat_statements "
                                              "-c pg_stat_statements.track=all")
    stack = Stack(state, free_ports=True, env=base_env)
    target = Target(bootstrap="", server_url="", service_urls={}, stack=stack, state_dir=state)
    log(f"starting Kafka + PostgreSQL in {state}")
    t = time.monotonic()
    stack.start_infra()
    log(f"infra up in {time.monotonic() - t:.1f}s: kafka {stack.bootstrap}")
    target.bootstrap, target.server_url = stack.bootstrap, stack.database_url
    sink = LeanSmtp if args.smtp_sink == "lean" else CountingSmtp
    target.smtp = sink(free_port()).start()
    otlp = None
    if args.otlp:
        from microcred_testkit.backbone import OtlpCollector

        collector = OtlpCollector(free_port()).start()
        target.otlp = collector  # type: ignore[attr-defined]
        otlp = collector.url
    target.env = service_env(target.smtp.port, suite, otlp, args.batch_size)
    # The caller's own MICROCRED_* settings are not inherited (a developer's shell may carry
    # a `make up`'s ports): settings for the services under test are given by --set.
    target.env.update(dict(kv.split("=", 1) for kv in args.set))
    start_services(target)
    return target


def start_services(target: Target) -> None:
    stack = target.stack
    t = time.monotonic()
    for name in SERVICES:
        stack.start_service(name, target.env, wait=False)
    for name in SERVICES:
        stack.service(name, target.env).wait_healthy(stack.service_url(name) + "/healthz", 180)
    target.service_urls = {n: stack.service_url(n) for n in SERVICES}
    log(f"services healthy in {time.monotonic() - t:.1f}s "
        f"(cryptosuite {target.env['MICROCRED_CRYPTOSUITE']})")


def restart_issuance(target: Target, suite: str) -> None:
    target.env = {**target.env, "MICROCRED_CRYPTOSUITE": SUITES[suite]}
    target.stack.restart_service("issuance", target.env, timeout=180)
    log(f"issuance restarted with {SUITES[suite]}")


def reuse_stack(args: argparse.Namespace) -> Target:
    path = Path(args.state_dir or REPO / ".state") / "stack.json"
    data = json.loads(path.read_text())
    env = data.get("env", {})
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS") or data["kafka"]["bootstrap"]
    server = env.get("DATABASE_URL") or data["postgres"]["url"]
    urls = {n: data["services"][n]["url"] for n in SERVICES}
    for n, url in urls.items():
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            if resp.status != 200:
                raise SystemExit(f"--reuse-stack: {n} at {url} is not healthy")
    log(f"reusing the running stack of {path} (kafka {bootstrap})")
    return Target(bootstrap=bootstrap, server_url=server, service_urls=urls, reused=True,
                  manifest=data)


# ------------------------------------------------------------------------------------------
# workload


@dataclass
class Workload:
    run_id: str
    events: list[Any]
    emails: list[str]
    keys: list[str]  # learner keys, same order

    @property
    def prefix(self) -> str:
        return f"learner{self.run_id}-"


def build_workload(n: int, run_id: str) -> Workload:
    from microcred_shared.contract.events import learner_key
    from microcred_testkit.backbone import learner, result

    seed = json.loads(SEED.read_text())
    providers = {p["id"] for p in seed["providers"]}
    # Only directly assessed definitions (a stack has no pass rule); components of a stack
    # are fine: each learner passes one definition only, so no stack completes.
    defs = [d for d in seed["definitions"] if d["provider_id"] in providers
            and d.get("pass_rule")]
    rng = random.Random(run_id)
    events, emails, keys = [], [], []
    for i in range(n):
        d = defs[i % len(defs)]
        rule = d["pass_rule"]
        if rule["kind"] == "score":
            outcome: dict[str, Any] = {"score": float(rng.randint(int(rule["min_score"]),
                                                                  int(rule["max_score"])))}
        elif rule["kind"] == "rubric":
            levels = rule["levels"]
            outcome = {"rubric_level": rng.choice(levels[levels.index(rule["min_level"]):])}
        else:
            outcome = {"passed": True}
        who = learner(f"{run_id}-{i}", language=d.get("language", "en"),
                      domain="bench.example")
        events.append(result(d["provider_id"], d["id"], result_id=f"bench-{run_id}-{i}",
                             who=who, **outcome))
        emails.append(who.email.lower())
        keys.append(learner_key(who.email))
    return Workload(run_id, events, emails, keys)


# ------------------------------------------------------------------------------------------
# CPU accounting per component (psutil), over a window


class CpuMeter:
    def __init__(self, groups: dict[str, list[int]], include_children: set[str]) -> None:
        self.groups = groups
        self.include_children = include_children
        self.start: dict[str, float] = {}
        self.t0 = 0.0
        self._jit: dict[int, float] = {}  # JIT compiler seconds by pid, at the last sample
        self.titles: dict[int, str] = {}  # a child's database (PostgreSQL backends)
        self.start_jit: dict[int, float] = {}
        # CPU of the children a group's parent has reaped (PostgreSQL: backends and
        # autovacuum workers that ended), by group, at the last sample
        self._reaped: dict[str, float] = {}
        self.start_reaped: dict[str, float] = {}

    def _procs(self, name: str) -> list[psutil.Process]:
        out = []
        for pid in self.groups[name]:
            try:
                p = psutil.Process(pid)
                out.append(p)
                if name in self.include_children:
                    out.extend(p.children(recursive=True))
            except psutil.Error:
                pass
        return out

    def _sample(self) -> dict[str, dict[int, float]]:
        self._threads = {p: jvm_threads(p) for pids in self.groups.values() for p in pids}
        self._jit = {p: sum(v for k, v in t.items() if k.startswith(COMPILER_THREADS))
                     for p, t in self._threads.items()}
        self._reaped = {}
        for name in self.include_children:
            for pid in self.groups.get(name, []):
                try:
                    c = psutil.Process(pid).cpu_times()
                    self._reaped[name] = (self._reaped.get(name, 0.0) + c.children_user
                                          + c.children_system)
                except psutil.Error:
                    pass
        res: dict[str, dict[int, float]] = {}
        for name in self.groups:
            res[name] = {}
            for p in self._procs(name):
                try:
                    c = p.cpu_times()
                    res[name][p.pid] = c.user + c.system
                    if name in self.include_children:
                        self.titles.setdefault(p.pid, backend_database(p))
                except psutil.Error:
                    pass
        return res

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.start_pp = self._sample()
        self.start_jit = self._jit
        self.start_threads = self._threads
        self.start_reaped = self._reaped

    def end(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        now = self._sample()
        out: dict[str, Any] = {"wall": wall, "cpu": {}, "window": [self.t0_wall, time.time()]}
        for name, pids in now.items():
            before = self.start_pp.get(name, {})
            # a process that appeared during the window counts from zero
            out["cpu"][name] = sum(v - before.get(pid, 0.0) for pid, v in pids.items())
        # PostgreSQL's CPU by database, from each backend's process title. A child that
        # ended inside the window (an autovacuum worker, a backend whose connection closed)
        # is counted from what its parent reaped, less what it had used before the window,
        # under "ended" (it used to be missed, in the total too).
        out["by_database"] = {}
        for name in self.include_children:
            split: dict[str, float] = {}
            for pid, v in now.get(name, {}).items():
                db = self.titles.get(pid, "other")
                split[db] = split.get(db, 0.0) + v - self.start_pp.get(name, {}).get(pid, 0.0)
            gone = sum(v for pid, v in self.start_pp.get(name, {}).items()
                       if pid not in now.get(name, {}))
            ended = max(self._reaped.get(name, 0.0) - self.start_reaped.get(name, 0.0)
                        - gone, 0.0)
            if ended:
                split["ended"] = ended
                out["cpu"][name] = out["cpu"].get(name, 0.0) + ended
            out["by_database"][name] = split
        # of which a JVM's JIT compiler threads (the broker's; none for the others)
        out["jit"] = {name: sum(self._jit[p] - self.start_jit.get(p, 0.0)
                                for p in self.groups[name] if self._jit.get(p))
                      for name in self.groups if any(self._jit.get(p) for p in self.groups[name])}
        # a JVM's CPU by thread (the broker's): where its time went, compiler and all
        out["threads"] = {}
        for name, pids in self.groups.items():
            split = {}
            for p in pids:
                before = self.start_threads.get(p, {})
                for thread, v in self._threads.get(p, {}).items():
                    if (d := v - before.get(thread, 0.0)) > 0:
                        split[thread] = split.get(thread, 0.0) + d
            if split and name == "kafka":
                out["threads"][name] = split
        return out


# A JVM's JIT compiler threads, as Linux's 15-character thread names have them.
COMPILER_THREADS = ("C1 CompilerThre", "C2 CompilerThre")
# Counts kept beside the threads' seconds by jvm_threads (not CPU: printed apart).
PAGE_FAULTS, MAJOR_FAULTS = "(minor faults)", "(major faults)"


def jvm_threads(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads by name (Linux's 15-character thread names, so
    the broker's request handlers and network threads are both "data-plane-kafk"; with
    the serial collector its garbage collection runs in "VM Thread"); empty where /proc
    is not there. A freshly started broker compiles its hot paths during the run ("C1/C2
    CompilerThre"): on this machine about as much CPU as all its request handling (issue
    12), a cost a long-running broker has paid long before, printed apart so it is not
    taken for a per-credential cost."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.find("(") + 1:text.rfind(")")], text[text.rfind(")") + 2:]
        fields = rest.split()
        name = name.rstrip("0123456789-")  # "kafka-scheduler-3", "C2 CompilerThre" alike
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    try:  # the process's page faults, minor and major (a mmapped index page, a refault)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out[PAGE_FAULTS] = float(fields[7])
        out[MAJOR_FAULTS] = float(fields[9])
    except (OSError, IndexError, ValueError):
        pass
    return out


def backend_database(p: psutil.Process) -> str:
    """A PostgreSQL backend's database from its title (`postgres: user db host(port)
    state`); the server's own processes (checkpointer, WAL writer, autovacuum) are
    "background"."""
    try:
        words = " ".join(p.cmdline()).split()
    except psutil.Error:
        return "other"
    if len(words) >= 4 and words[0] == "postgres:" and "(" in words[3]:
        return words[2]
    return "background"


def print_cpu(title: str, usage: dict[str, Any], cores: int, busy: float) -> None:
    wall = usage["wall"]
    total = sum(usage["cpu"].values())
    print(f"\n  CPU during {title} ({wall:.1f}s wall, {cores} cores = {wall * cores:.1f} "
          f"core-s available; measured processes used {total:.1f} core-s = "
          f"{100 * total / max(wall * cores, 1e-9):.0f}%):")
    for name, cpu in sorted(usage["cpu"].items(), key=lambda kv: -kv[1]):
        print(f"    {name:<24} {cpu:7.1f} core-s  {100 * cpu / max(wall, 1e-9):5.0f}% of one core")
    machine = busy * wall * cores
    print(f"    machine-wide busy {100 * busy:.0f}% = {machine:.1f} core-s, of which "
          f"{max(machine - total, 0):.1f} core-s were NOT ours (other work on this shared "
          "machine: noise)")


def print_threads(usage: dict[str, Any], n: int, per: str) -> None:
    """The broker's CPU by thread per credential (or message): its request handlers and
    network threads ("data-plane-kafk"), the garbage collector ("VM Thread" with the
    serial collector), the JIT compiler, the group coordinator, the log cleaner..."""
    for name, split in usage.get("threads", {}).items():
        faults = {k: split.get(k, 0.0) / max(n, 1) for k in (PAGE_FAULTS, MAJOR_FAULTS)}
        top = sorted(((k, v) for k, v in split.items() if k not in faults),
                     key=lambda kv: -kv[1])
        shown = [(k, v) for k, v in top if 1000 * v / max(n, 1) >= 0.005]
        rest = sum(v for k, v in top) - sum(v for k, v in shown)
        print(f"    {name} by thread, ms per {per}: " + ", ".join(
            f"{k} {1000 * v / max(n, 1):.3f}" for k, v in shown)
            + f", others {1000 * rest / max(n, 1):.3f}; page faults per {per.split()[0]} "
            f"{faults[PAGE_FAULTS]:.2f} minor, {faults[MAJOR_FAULTS]:.3f} major")


def report_round_kafka(requests_dir: Path | None, usage: dict[str, Any],
                       n: int) -> dict[str, Any] | None:
    """A latency round's broker by thread and, with --count-requests, its Kafka requests per
    credential, as the throughput run prints them: at a few hundred per second the batches
    are small and the requests per credential several times a burst's (README, wave 19,
    "what a credential costs at 500/s"). The window's ends are the round's CPU window; the
    counts are right to about half a second at either end, so the GET /metrics of the
    stall watch just outside it (OffsetFetch, one per assigned partition) may show."""
    print_threads(usage, n, "credential")
    return report_requests(requests_dir, usage, n, "credential") if requests_dir else None


def count_requests(out: Path) -> Path:
    """Have every Python process started from here on count its Kafka requests
    (bench/e2e/kafka_requests/sitecustomize.py, through PYTHONPATH: the services inherit
    this process's environment, the baseline's relays too), and this one from now."""
    import importlib.util

    out.mkdir(parents=True, exist_ok=True)
    site = HERE / "kafka_requests"
    os.environ["BENCH_KAFKA_REQUESTS_DIR"] = str(out)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    spec = importlib.util.spec_from_file_location("bench_kafka_requests",
                                                  site / "sitecustomize.py")
    assert spec and spec.loader
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return out


def _requests_at(rows: list[dict[str, Any]], t: float) -> dict[str, dict[str, int]]:
    last: dict[str, dict[str, int]] = {}
    for row in rows:
        if row["t"] > t:
            break
        last = row["counts"]
    return last


def report_requests(out: Path, usage: dict[str, Any], n: int, per: str) -> dict[str, Any]:
    """Kafka requests per credential (or message) inside a CpuMeter window, from the
    totals each process wrote twice a second (so right to about half a second at either
    end): by API, and for produce and fetch by client, with records, partitions and bytes."""
    time.sleep(0.6)  # every process's totals past the window's end
    t0, t1 = usage["window"]
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for path in out.glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        before, after = _requests_at(rows, t0), _requests_at(rows, t1 + 0.55)
        relay = "multiprocessing" in rows[0]["argv"]  # a baseline relay (spawned)
        for key, values in after.items():
            client, api = key.split("|", 1)
            if relay:
                client = "relay " + ("producer" if "producer" in client else "consumer")
            into = counts.setdefault((client, api), {})
            for name, value in values.items():
                into[name] = into.get(name, 0) + value - before.get(key, {}).get(name, 0)
    n = max(n, 1)
    by_api: dict[str, int] = {}
    for (_client, api), c in counts.items():
        by_api[api] = by_api.get(api, 0) + c.get("n", 0)
    by_api = {k: v for k, v in sorted(by_api.items(), key=lambda kv: -kv[1]) if v}
    print(f"    Kafka requests per {per}: {sum(by_api.values()) / n:.3f} ("
          + ", ".join(f"{api} {v / n:.4f}" for api, v in by_api.items()) + ")")
    rows_out = []
    for (client, api), c in sorted(counts.items()):
        if api not in ("Produce", "Fetch") or not c.get("n"):
            continue
        line = {"client": client, "api": api, **c}
        rows_out.append(line)
        if api == "Produce":
            print(f"      {client:<28} Produce {c['n']:5d} ({c['n'] / n:.4f} per {per.split()[0]}"
                  f"): {c['records'] / c['n']:.1f} records, {c['partitions'] / c['n']:.1f} "
                  f"partitions, {c['bytes'] / c['n'] / 1000:.1f} KB each")
        else:
            answers = max(c.get("answers", 0), 1)
            print(f"      {client:<28} Fetch   {c['n']:5d} ({c['n'] / n:.4f} per {per.split()[0]}"
                  f"): {c['partitions'] / c['n']:.1f} partitions asked, "
                  f"{c.get('filled', 0) / answers:.2f} with records; "
                  f"{c.get('records', 0) / answers:.1f} records, "
                  f"{c.get('bytes', 0) / answers / 1000:.1f} KB per answer; "
                  f"{c.get('empty', 0)} empty")
    return {"per_api": {k: v / n for k, v in by_api.items()}, "clients": rows_out}


def machine_busy_fraction(start: psutil._common.scputimes, end: Any) -> float:
    busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
    idle = lambda t: t.idle + t.iowait  # noqa: E731
    db, di = busy(end) - busy(start), idle(end) - idle(start)
    return db / (db + di) if db + di > 0 else float("nan")


# ------------------------------------------------------------------------------------------
# profiling with py-spy


def find_py_spy() -> str | None:
    for cand in (shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy")):
        if cand and Path(cand).exists():
            return cand
    return None


class Profiler:
    def __init__(self, out_dir: Path, rate: int, nonblocking: bool, gil: bool = False) -> None:
        self.exe = find_py_spy()
        self.out_dir = out_dir
        self.rate = rate
        self.nonblocking = nonblocking
        self.gil = gil
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, Path] = {}

    def start(self, pids: dict[str, int | None], tag: str) -> None:
        if not self.exe:
            log("py-spy not found: run with `uv run --with py-spy python bench/e2e/run.py ...`")
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            if not pid:
                continue
            out = self.out_dir / f"{tag}-{name}.pyspy.txt"
            argv = [self.exe, "record", "--pid", str(pid), "--rate", str(self.rate),
                    "--format", "raw", "--output", str(out)]
            if self.gil:  # only samples holding the GIL: on-CPU Python, not epoll waits
                argv.append("--gil")
            if self.nonblocking:
                argv.append("--nonblocking")
            logf = open(self.out_dir / f"{tag}-{name}.pyspy.log", "wb")  # noqa: SIM115
            self.procs[name] = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
            self.files[name] = out
        log(f"py-spy recording {', '.join(self.procs)} at {self.rate} Hz")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for name, proc in self.procs.items():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                log(f"py-spy for {name} did not stop; killing it")
                proc.kill()
                proc.wait(10)
        self.procs = {}


def frame_parts(frame: str) -> tuple[str, str]:
    """'func (pkg/mod.py:12)' -> ('pkg/mod.py:func', 'pkg')."""
    func, _, loc = frame.rpartition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    if parts[0] in ("<frozen", "") or path.startswith("<"):
        pkg = "stdlib"
    elif len(parts) == 1:
        pkg = parts[0].removesuffix(".py")
    else:
        pkg = parts[0]
    if pkg.startswith("microcred_") and len(parts) > 2:
        pkg = f"{parts[0]}.{parts[1]}"  # e.g. microcred_shared.vc
    return f"{path}:{func}", pkg


# Leaf frames that mean "this thread waits": py-spy's own idle detection misses most of them
# on this kernel (threads blocked in epoll/futex are sampled as active), so they are dropped
# here; what remains is on-CPU Python (checked against psutil's CPU time per process).
IDLE_LEAVES = {
    "threading.py:Condition.wait", "threading.py:Event.wait",
    "threading.py:Thread._wait_for_tstate_lock", "selectors.py:EpollSelector.select",
    "selectors.py:SelectSelector.select", "selectors.py:PollSelector.select",
    "concurrent/futures/thread.py:_worker", "queue.py:Queue.get", "queue.py:SimpleQueue.get",
}


def analyse_profile(path: Path, rate: int, top: int) -> dict[str, Any]:
    self_fn: collections.Counter[str] = collections.Counter()
    incl_fn: collections.Counter[str] = collections.Counter()
    self_pkg: collections.Counter[str] = collections.Counter()
    incl_pkg: collections.Counter[str] = collections.Counter()
    total = idle = 0
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_parts(f) for f in stack.split(";") if f]
        if not frames or frames[-1][0] in IDLE_LEAVES:
            idle += n
            continue
        total += n
        self_fn[frames[-1][0]] += n
        self_pkg[frames[-1][1]] += n
        for fn in {f[0] for f in frames}:
            incl_fn[fn] += n
        for pkg in {f[1] for f in frames}:
            incl_pkg[pkg] += n
    return {"samples": total, "idle_samples": idle, "cpu_s": total / rate,
            "self_fn": self_fn.most_common(top),
            "incl_fn": incl_fn.most_common(top * 3), "self_pkg": self_pkg.most_common(top),
            "incl_pkg": incl_pkg.most_common(top * 2)}


_BORING_INCL = ("asyncio/", "uvicorn/", "faststream/", "runpy.py", "click/", "anyio/",
                "starlette/", "fastapi/", "fast_depends/", "contextlib.py", "<frozen",
                "threading.py",
                "concurrent/", "microcred_notify/__main__", "microcred_assessment/__main__",
                "microcred_issuance/__main__", "microcred_registry/__main__",
                "microcred_shared/runtime.py:serve", "main (", "<module>")


def print_profile(name: str, prof: dict[str, Any], top: int, cpu: float | None) -> None:
    total = prof.get("samples", 0)
    if not total:
        print(f"\n  [{name}] no samples")
        return
    check = f"; psutil: {cpu:.1f} core-s" if cpu is not None else ""
    print(f"\n  [{name}] {total} busy samples ≈ {prof['cpu_s']:.1f} s on-CPU "
          f"({prof['idle_samples']} idle-thread samples dropped{check}); % of busy samples")
    print("    by package (self):   " + ", ".join(
        f"{p} {100 * c / total:.0f}%" for p, c in prof["self_pkg"][:top]))
    print("    by package (incl.):  " + ", ".join(
        f"{p} {100 * c / total:.0f}%" for p, c in prof["incl_pkg"][:top]
        if p not in ("stdlib", "runpy", "uvicorn")))
    print("    top functions (self):")
    for fn, c in prof["self_fn"][:top]:
        print(f"      {100 * c / total:5.1f}%  {fn}")
    print("    top functions (inclusive, project + libraries, event-loop frames skipped):")
    shown = 0
    for fn, c in prof["incl_fn"]:
        if any(b in fn for b in _BORING_INCL):
            continue
        print(f"      {100 * c / total:5.1f}%  {fn}")
        shown += 1
        if shown >= top:
            break


# ------------------------------------------------------------------------------------------
# backbone run


STAGES = (
    ("assessment", "decided", "SELECT learner_key, extract(epoch from decided_at) FROM results "
     "WHERE learner_key = ANY($1::text[])", "SELECT count(*) FROM results WHERE decided_at >= "
     "to_timestamp($1)"),
    ("issuance", "issued", "SELECT learner_key, extract(epoch from issued_at) FROM "
     "issued_credentials WHERE learner_key = ANY($1::text[])",
     "SELECT count(*) FROM issued_credentials WHERE issued_at >= to_timestamp($1)"),
    ("registry", "registered", "SELECT learner_key, extract(epoch from registered_at) FROM "
     "credentials WHERE learner_key = ANY($1::text[])",
     "SELECT count(*) FROM credentials WHERE registered_at >= to_timestamp($1)"),
)
NOTIFY_DONE = ("SELECT count(*) FILTER (WHERE status = 'delivered'), "
               "count(*) FILTER (WHERE status = 'failed'), count(*) FROM notifications "
               "WHERE recipient LIKE $1")
NOTIFY_ROWS = ("SELECT lower(recipient), extract(epoch from delivered_at), "
               "extract(epoch from created_at) FROM notifications "
               "WHERE recipient LIKE $1 AND status = 'delivered'")


async def connect_dbs(target: Target) -> dict[str, asyncpg.Connection]:
    return {s: await asyncpg.connect(target.db_url(s), timeout=30) for s in SERVICES}


# What PostgreSQL did over a window, from its cumulative statistics (cluster-wide: the four
# services' databases and the server's own processes): transactions, WAL written (and its
# full-page images: a page's first change after a checkpoint) and how often it was flushed
# to disk (a commit's flush is ~150 µs of a backend's CPU here, the same transaction
# without it ~40), table and index pages written and added. Backends
# report their counts at the end of a transaction at most once a second, so a window's
# figures are right to about a second's worth at either end.
_PG_COUNTERS = (
    "SELECT (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database "
    "        WHERE datname LIKE 'microcred_%') AS transactions, "
    "(SELECT sum(sessions) FROM pg_stat_database WHERE datname LIKE 'microcred_%') "
    "    AS sessions, "
    "(SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes, "
    "(SELECT wal_fpi FROM pg_stat_wal) AS wal_fpi, "
    "(SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'wal' "
    "        AND context = 'normal') AS wal_flushes, "
    "(SELECT coalesce(sum(write_bytes), 0) FROM pg_stat_io WHERE object = 'wal' "
    "        AND context = 'init') AS wal_init_bytes, "
    "(SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'relation') "
    "    AS pages_written, "
    "(SELECT coalesce(sum(extends), 0) FROM pg_stat_io WHERE object = 'relation') "
    "    AS pages_added")


async def pg_counters(dbs: dict[str, asyncpg.Connection]) -> dict[str, float] | None:
    """PostgreSQL's cumulative counters (_PG_COUNTERS) now; None where the server has no
    pg_stat_io (before 16) or refuses."""
    try:
        row = await next(iter(dbs.values())).fetchrow(_PG_COUNTERS)
    except asyncpg.PostgresError:
        return None
    return {k: float(v or 0) for k, v in dict(row).items()} if row else None


def pg_window(before: dict[str, float] | None, after: dict[str, float] | None,
              ) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    return {k: after[k] - before[k] for k in after}


def print_pg_window(counts: dict[str, float] | None, n: int) -> dict[str, float]:
    """One line: what PostgreSQL did per credential over the window."""
    if not counts or n <= 0:
        return {}
    per = {k: v / n for k, v in counts.items()}
    print(f"    PostgreSQL per credential: {per['transactions']:.2f} transactions, "
          f"{per['wal_flushes']:.2f} WAL flushes, {per['wal_bytes'] / 1024:.1f} KiB of WAL "
          f"({per.get('wal_fpi', 0):.2f} full-page images; + {per['wal_init_bytes'] / 1024:.1f} "
          "KiB zeroing new WAL segments), "
          f"{per['pages_written']:.2f} pages written, {per['pages_added']:.2f} added, "
          f"{per['sessions']:.3f} new sessions")
    return per


async def publish(bootstrap: str, events: list[Any], chunk: int, rate: float,
                  inflight: int = 1) -> tuple[list[float], list[float], float]:
    """ProviderPublisher.publish_many in chunks (at most `inflight` chunks awaiting their
    acks); returns per-event submit time (its chunk's start), ack time, and the duration."""
    from microcred_testkit.backbone import ProviderPublisher

    sub = [0.0] * len(events)
    ack = [0.0] * len(events)
    t_begin = time.time()
    gate = asyncio.Semaphore(inflight)
    async with ProviderPublisher(bootstrap) as pub:

        async def one(start: int, part: list[Any]) -> None:
            try:
                t = time.time()
                await pub.publish_many(part)
                t_ack = time.time()
                for i in range(start, start + len(part)):
                    sub[i], ack[i] = t, t_ack
            finally:
                gate.release()

        async def scheduled(start: int, part: list[Any], due: float) -> None:
            # Open loop: sent at its due time whatever is still awaiting acks, and its
            # submit time is the due time, so a late send counts against the backbone
            # (no coordinated omission).
            t = time.time()
            await pub.publish_many(part)
            t_ack = time.time()
            for i in range(start, start + len(part)):
                sub[i], ack[i] = due, t_ack
            lag.append(t - due)

        tasks = []
        lag: list[float] = []
        for start in range(0, len(events), chunk):
            if rate > 0:  # open loop: chunk k is due at begin + k*chunk/rate
                due = t_begin + start / rate
                if (delay := due - time.time()) > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(scheduled(start, events[start:start + chunk],
                                                           due)))
                continue
            await gate.acquire()
            tasks.append(asyncio.create_task(one(start, events[start:start + chunk])))
        await asyncio.gather(*tasks)
    if lag and max(lag) > 0.05:
        log(f"  open loop: the publisher itself sent up to {max(lag) * 1000:.0f} ms late "
            "(counted in the latency)")
    return sub, ack, time.time() - t_begin


async def ingest(target: Target, events: list[Any], args: argparse.Namespace, rate: float,
                 inflight: int) -> tuple[list[float], list[float], float]:
    """Kafka publishing, or HTTP ingest (bench/e2e/http_ingest.py) with --ingest http*."""
    if args.ingest == "kafka":
        return await publish(target.bootstrap, events, args.chunk, rate, inflight)
    import http_ingest  # beside this file

    return await http_ingest.submit(target, events, args.ingest)


async def wait_delivered(dbs: dict[str, asyncpg.Connection], wl: Workload, n: int, t0: float,
                         deadline: float, stall: float, progress_every: float) -> dict[str, int]:
    last_change, last_done = time.monotonic(), -1
    next_print = 0.0
    counts: dict[str, int] = {}
    while True:
        delivered, failed, owed = await dbs["notify"].fetchrow(NOTIFY_DONE, wl.prefix + "%")
        counts = {"delivered": delivered, "failed": failed, "owed": owed}
        now = time.monotonic()
        if delivered != last_done:
            last_done, last_change = delivered, now
        if now >= next_print or delivered + failed >= n:
            stage_counts = []
            for svc, label, _, count_sql in STAGES:
                stage_counts.append(f"{label} {await dbs[svc].fetchval(count_sql, t0 - 1)}")
            log(f"  t+{time.time() - t0:6.1f}s  " + "  ".join(stage_counts)
                + f"  notified {delivered}/{n} (owed {owed}, failed {failed})")
            next_print = now + progress_every
        if delivered + failed >= n:
            return counts
        if now - last_change > stall:
            log(f"  no delivery progress for {stall:.0f}s: giving up with {delivered}/{n}")
            return counts
        if now > deadline:
            log(f"  time is up: {delivered}/{n} delivered")
            return counts
        await asyncio.sleep(1.0)


async def collect_stages(dbs: dict[str, asyncpg.Connection], wl: Workload) -> dict[str, dict[
        str, float]]:
    """stage -> learner key -> epoch seconds."""
    out: dict[str, dict[str, float]] = {}
    for svc, label, rows_sql, _ in STAGES:
        rows = await dbs[svc].fetch(rows_sql, wl.keys)
        out[label] = {k: float(t) for k, t in rows}
    email_key = dict(zip(wl.emails, wl.keys, strict=True))
    rows = await dbs["notify"].fetch(NOTIFY_ROWS, wl.prefix + "%")
    out["delivered"] = {email_key[e]: float(t) for e, t, _ in rows if e in email_key}
    out["notify_created"] = {email_key[e]: float(c) for e, _, c in rows if e in email_key}
    return out


def healthz(target: Target) -> dict[str, Any]:
    out = {}
    for n, url in target.service_urls.items():
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
                out[n] = json.loads(resp.read())
        except Exception as exc:  # noqa: BLE001
            out[n] = {"error": str(exc)}
    return out


def backbone_meter(target: Target) -> CpuMeter:
    groups = {n: [p] for n in SERVICES if (p := target.service_pid(n))}
    if (kp := target.kafka_pid()):
        groups["kafka"] = [kp]
    if (pp := target.postgres_pid()):
        groups["postgres (all backends)"] = [pp]
    groups["bench driver + smtp sink"] = [os.getpid()]
    return CpuMeter(groups, {"postgres (all backends)"})


class KafkaBytes:
    """What the broker took in and handed out over a window (issue 12, wave 17): the bytes
    its log segments grew by, per topic (one broker, no replicas: what producers wrote,
    after their compression), and its process's read and written bytes (/proc/<pid>/io
    rchar and wchar: sockets and files, sendfile included - requests in, log appends and
    fetched records out)."""

    def __init__(self, target: Target) -> None:
        kafka = target.stack.kafka if target.stack is not None else None
        self.data_dir: Path | None = kafka.data_dir if kafka is not None else None
        self.pid = target.kafka_pid()
        self._start: tuple[dict[str, int], dict[str, int]] = ({}, {})

    def _logs(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.data_dir is None or not self.data_dir.exists():
            return out
        for seg in self.data_dir.glob("*/*.log"):
            topic = seg.parent.name.rsplit("-", 1)[0]
            try:
                out[topic] = out.get(topic, 0) + seg.stat().st_size
            except FileNotFoundError:  # a segment deleted under us
                pass
        return out

    def _io(self) -> dict[str, int]:
        if self.pid is None:
            return {}
        try:
            io = psutil.Process(self.pid).io_counters()
        except (psutil.Error, AttributeError):
            return {}
        return {"read": int(io.read_chars), "written": int(io.write_chars)}

    def begin(self) -> None:
        self._start = (self._logs(), self._io())

    def end(self) -> dict[str, Any]:
        logs, io = self._logs(), self._io()
        grown = {t: b - self._start[0].get(t, 0) for t, b in logs.items()}
        return {"log_bytes": {t: b for t, b in grown.items() if b > 0},
                "io": {k: v - self._start[1].get(k, 0) for k, v in io.items()}}


def print_kafka_bytes(kb: dict[str, Any] | None, n: int) -> dict[str, Any]:
    if not kb or n <= 0:
        return {}
    logs = {t: b / n for t, b in sorted(kb["log_bytes"].items(), key=lambda kv: -kv[1])}
    io = {k: v / n for k, v in kb["io"].items()}
    print(f"    Kafka bytes per credential: logs grew {sum(logs.values()) / 1024:.2f} KB ("
          + ", ".join(f"{t} {b / 1024:.2f}" for t, b in logs.items()) + ")"
          + (f"; the broker's process read {io['read'] / 1024:.1f} KB, wrote "
             f"{io['written'] / 1024:.1f} KB (sockets and files)" if io else ""))
    return {"log_bytes": logs, "io": io}


# What `--warmup 0` still sends before the measured run, as every run did before wave 19:
# enough for the services' and the driver's first connections, not to warm the backbone.
WARMUP_PRELUDE = 100
WARMUP_DEFAULT = 10_000


def warmup_results(args: argparse.Namespace) -> int:
    """Results sent before the measured run: --warmup, or the prelude with --warmup 0."""
    return args.warmup if args.warmup > 0 else WARMUP_PRELUDE


def warmup_slices(n: int, k: int) -> list[int]:
    """n results in k consecutive slices as even as they go (the larger ones first)."""
    k = max(min(k, n), 1)
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def backbone_state(args: argparse.Namespace) -> str:
    """In which state the measured run meets the backbone, as the summary says it."""
    if args.warmup <= 0:
        return (f"cold: a fresh stack, {WARMUP_PRELUDE} results before the run "
                "(--warmup 0, as before wave 19)")
    return (f"warm: after a warm-up of {args.warmup:,} results through the backbone"
            + (" and a CHECKPOINT" if args.warmup_checkpoint == "on" else ""))


def net_per_credential(usage: dict[str, Any], idle: dict[str, Any] | None,
                       n: int) -> dict[str, float]:
    """CPU per credential (ms) by process, less what that process burns with no load (the
    idle probe's rate) over the window's wall time; without a probe, the CPU as it is."""
    wall = usage["wall"]
    burn = {k: v * wall / idle["wall"] for k, v in idle["cpu"].items()} if idle else {}
    return {k: max(v - burn.get(k, 0.0), 0.0) * 1000 / max(n, 1)
            for k, v in usage["cpu"].items()}


# pg_wal's segment files, and those past the one being written: segments a CHECKPOINT
# recycled (renamed for reuse), which later WAL fills without zero-filling new files.
_WAL_DIR = (
    "SELECT count(*) AS segments, "
    "count(*) FILTER (WHERE name > pg_walfile_name(pg_current_wal_lsn())) AS ahead, "
    "coalesce(sum(size), 0) AS bytes "
    "FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'")


async def wal_dir(conn: asyncpg.Connection) -> dict[str, float] | None:
    try:
        row = await conn.fetchrow(_WAL_DIR)
    except asyncpg.PostgresError:
        return None
    return {k: float(v) for k, v in dict(row).items()} if row else None


async def checkpoint(dbs: dict[str, asyncpg.Connection], when: str) -> dict[str, Any]:
    """A CHECKPOINT after the warm-up: the WAL segments the warm-up filled are recycled
    (wal_recycle, up to the checkpoint distance's estimate, within min_wal_size and
    max_wal_size), as on a server that has checkpointed before, instead of every new
    segment being zero-filled. Its own cost falls outside every measured window."""
    conn = dbs["notify"]
    before = await wal_dir(conn)
    t = time.monotonic()
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError as exc:
        log(f"CHECKPOINT {when} refused ({exc}): WAL segments are not recycled")
        return {"error": str(exc)}
    took = time.monotonic() - t
    after = await wal_dir(conn)
    log(f"CHECKPOINT {when} in {took:.2f}s"
        + (f": pg_wal {before['segments']:.0f} -> {after['segments']:.0f} segments, "
           f"{after['ahead']:.0f} recycled ahead of the insert position"
           if before and after else ""))
    return {"seconds": took, "wal_before": before, "wal_after": after}


def report_warmup(cold: dict[str, Any], idle: dict[str, Any] | None,
                  cores: int) -> dict[str, Any]:
    """The warm-up's own figures: what the same load costs a cold backbone ("cold")."""
    usage, done = cold["usage"], max(cold["delivered"], 1)
    per = {k: 1000 * v / done for k, v in usage["cpu"].items()}
    net = net_per_credential(usage, idle, done)
    jit = {k: 1000 * v / done for k, v in usage.get("jit", {}).items()}
    busy = cold["machine_busy"] * usage["wall"] * cores
    not_ours = max(busy - sum(usage["cpu"].values()), 0.0)
    print(f"\n=== cold: the warm-up, {cold['delivered']}/{cold['n']} credentials through a "
          f"fresh backbone in {usage['wall']:.1f}s (not counted below) ===")
    print(f"  COLD CPU per credential {sum(per.values()):.2f}ms, less idle burn "
          f"{sum(net.values()):.2f}ms: " + ", ".join(
              f"{k.split(' ')[0]} {v:.2f}" for k, v in sorted(net.items(), key=lambda kv: -kv[1]))
          + "".join(f"; of {k}'s, its JIT compiler {v:.2f}" for k, v in jit.items())
          + f"  ({not_ours:.1f} of {busy:.1f} busy core-s not ours)")
    pg = print_pg_window(cold.get("pg"), done)
    slices = []
    for i, sl in enumerate(cold.get("slices") or [], 1):
        sn = max(sl["delivered"], 1)
        snet = net_per_credential(sl["usage"], idle, sn)
        sjit = sum(1000 * v / sn for v in sl["usage"].get("jit", {}).values())
        spg = {k: v / sn for k, v in (sl.get("pg") or {}).items()}
        sbusy = sl["machine_busy"] * sl["usage"]["wall"] * cores
        snot = max(sbusy - sum(sl["usage"]["cpu"].values()), 0.0)
        print(f"    slice {i} ({sl['delivered']}/{sl['n']}, {sl['usage']['wall']:.1f}s): less "
              f"idle {sum(snet.values()):.2f}ms: " + ", ".join(
                  f"{k.split(' ')[0]} {v:.2f}" for k, v in sorted(snet.items(),
                                                                  key=lambda kv: -kv[1]))
              + f"; JIT {sjit:.2f}; WAL zeroing {spg.get('wal_init_bytes', 0) / 1024:.1f} "
              f"KiB, pages written {spg.get('pages_written', 0):.2f}; "
              f"{snot:.1f}/{sbusy:.1f} core-s not ours")
        slices.append({"n": sl["n"], "delivered": sl["delivered"], "wall": sl["usage"]["wall"],
                       "net_cpu_ms_per_credential": snet, "jit_ms_per_credential": sjit,
                       "pg_per_credential": spg, "not_ours_core_s": snot})
    cp = cold.get("checkpoint")
    if cp and cp.get("wal_after"):
        a = cp["wal_after"]
        print(f"    then a CHECKPOINT ({cp['seconds']:.2f}s, not measured): pg_wal holds "
              f"{a['segments']:.0f} segments ({a['bytes'] / 2**20:.0f} MiB), "
              f"{a['ahead']:.0f} of them recycled for the WAL to come")
    return {"state": "cold", "n": cold["n"], "delivered": cold["delivered"],
            "wall": usage["wall"], "cpu_ms_per_credential": per,
            "net_cpu_ms_per_credential": net, "jit_ms_per_credential": jit,
            "pg_per_credential": pg, "checkpoint": cp, "machine_busy": cold["machine_busy"],
            "not_ours_core_s": not_ours, "slices": slices, "usage": usage}


async def run_backbone(target: Target, args: argparse.Namespace, suite: str,
                       profiler: Profiler | None, cores: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    warm_n = warmup_results(args)
    sizes = warmup_slices(warm_n, args.warmup_slices if args.warmup > 0 else 1)
    log(f"backbone [{suite}]: building {warm_n} warm-up + {args.n} results (run {run_id})")
    warm = [build_workload(k, f"{run_id}w{i}") for i, k in enumerate(sizes)]
    wl = build_workload(args.n, run_id)
    dbs = await connect_dbs(target)
    cold: dict[str, Any] | None = None
    try:
        # The warm-up (wave 19): results through the whole backbone, measured apart and not
        # counted, so that the run below meets the stack as one that has run for a while -
        # PostgreSQL's shared buffers and backends' memory touched, WAL segments to recycle
        # after a CHECKPOINT, the broker's hot paths compiled, the services' first calls
        # made. --warmup 0: the 100-result prelude of before (first connections only).
        # With --warmup-slices, each slice is a burst of its own, measured on its own.
        log(f"warm-up: {warm_n} results" + ("" if args.warmup > 0 else
                                            " (--warmup 0: the prelude only, a cold backbone)")
            + (f" in {len(sizes)} slices" if len(sizes) > 1 else ""))
        measured = args.warmup > 0
        if measured:
            wmeter = backbone_meter(target)
            w_sys, w_pg = psutil.cpu_times(), await pg_counters(dbs)
            wmeter.begin()
        delivered, slices = 0, []
        for part in warm:
            smeter = backbone_meter(target) if len(warm) > 1 else None
            if smeter:
                s_sys, s_pg = psutil.cpu_times(), await pg_counters(dbs)
                smeter.begin()
            t = time.time()
            await ingest(target, part.events, args, 0, args.inflight)
            done = await wait_delivered(dbs, part, len(part.events), t,
                                        time.monotonic() + args.timeout, args.stall,
                                        args.progress)
            delivered += done.get("delivered", 0)
            if smeter:
                slices.append({"n": len(part.events), "delivered": done.get("delivered", 0),
                               "usage": smeter.end(),
                               "machine_busy": machine_busy_fraction(s_sys, psutil.cpu_times()),
                               "pg": pg_window(s_pg, await pg_counters(dbs))})
        if measured:
            cold = {"n": warm_n, "delivered": delivered, "usage": wmeter.end(),
                    "machine_busy": machine_busy_fraction(w_sys, psutil.cpu_times()),
                    "pg": pg_window(w_pg, await pg_counters(dbs)), "checkpoint": None,
                    "slices": slices}
            if args.warmup_checkpoint == "on":
                cold["checkpoint"] = await checkpoint(dbs, "after the warm-up")
        pids = {n: target.service_pid(n) for n in SERVICES}
        meter = backbone_meter(target)
        idle = None
        if args.idle_probe > 0:  # what the stack burns with no load (polls, heartbeats)
            meter.begin()
            await asyncio.sleep(args.idle_probe)
            idle = meter.end()
        if profiler:
            profiler.start(pids, f"backbone-{suite}")
            await asyncio.sleep(1.0)  # let py-spy attach before the load starts
        statements = args.pg_statements and not target.reused
        if statements:
            await reset_statements(dbs)
        sys_start = psutil.cpu_times()
        pg_start = await pg_counters(dbs)
        kbytes = KafkaBytes(target)
        kbytes.begin()
        meter.begin()
        log(f"publishing {args.n} results in chunks of {args.chunk}"
            + (f" at {args.rate:g}/s" if args.rate else " as fast as possible"))
        sub, ack, pub_s = await ingest(target, wl.events, args, args.rate, args.inflight)
        t0 = min(sub)
        log(f"published {args.n} in {pub_s:.2f}s ({args.n / pub_s:.0f}/s acked by the broker)")
        deadline = time.monotonic() + args.timeout
        counts = await wait_delivered(dbs, wl, args.n, t0, deadline, args.stall,
                                      args.progress)
        usage = meter.end()
        kafka_bytes = kbytes.end()
        busy = machine_busy_fraction(sys_start, psutil.cpu_times())
        pg = pg_window(pg_start, await pg_counters(dbs))
        if profiler:
            profiler.stop()
        counted = await read_statements(dbs) if statements else None
        stages = await collect_stages(dbs, wl)
    finally:
        for c in dbs.values():
            await c.close()
    submit = dict(zip(wl.keys, sub, strict=True))
    smtp_times: dict[str, float] = {}
    if target.smtp is not None:
        email_key = dict(zip(wl.emails, wl.keys, strict=True))
        smtp_times = {email_key[e]: t for e, t in list(target.smtp.received.items())
                      if e in email_key}
    return {"suite": suite, "run_id": run_id, "n": args.n, "t0": t0, "publish_s": pub_s,
            "submit": submit, "ack": dict(zip(wl.keys, ack, strict=True)), "stages": stages,
            "smtp": smtp_times, "counts": counts, "usage": usage, "machine_busy": busy,
            "health": healthz(target), "cores": cores, "idle": idle, "statements": counted,
            "pg": pg, "kafka_bytes": kafka_bytes, "cold": cold, "state": backbone_state(args)}


async def reset_statements(dbs: dict[str, asyncpg.Connection]) -> None:
    for conn in dbs.values():
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await next(iter(dbs.values())).execute("SELECT pg_stat_statements_reset()")


async def read_statements(dbs: dict[str, asyncpg.Connection]) -> list[dict[str, Any]]:
    """Every statement the services ran in the window, by database (the bench's own
    progress queries included: they read `results`/`notifications` by learner key)."""
    rows = await next(iter(dbs.values())).fetch(
        "SELECT d.datname, s.calls, s.rows, s.total_exec_time, s.query "
        "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname LIKE 'microcred_%' ORDER BY s.calls DESC")
    return [{"db": r["datname"].removeprefix("microcred_"), "calls": r["calls"],
             "rows": r["rows"], "ms": r["total_exec_time"], "query": r["query"]} for r in rows]


def print_statements(counted: list[dict[str, Any]], n: int, top: int) -> dict[str, float]:
    by_db: dict[str, float] = {}
    for r in counted:
        by_db[r["db"]] = by_db.get(r["db"], 0) + r["calls"]
    total = sum(by_db.values())
    print(f"  PostgreSQL statements per credential: {total / n:.2f} ("
          + ", ".join(f"{db} {c / n:.2f}" for db, c in sorted(by_db.items(),
                                                             key=lambda x: -x[1])) + ")")
    for r in counted[:top]:
        q = " ".join(r["query"].split())
        print(f"    {r['calls'] / n:7.3f}/cred {r['db']:<10} {r['ms'] / n * 1000:7.1f} µs/cred "
              f"{q[:110]}")
    return {db: c / n for db, c in by_db.items()}


def report_backbone(res: dict[str, Any]) -> dict[str, Any]:
    n, t0, submit, st = res["n"], res["t0"], res["submit"], res["stages"]
    delivered = st["delivered"]
    lat = [delivered[k] - submit[k] for k in delivered]
    tp = throughput(list(delivered.values()), t0)
    summary = {"suite": SUITES[res["suite"]], "n": n, "delivered": len(delivered),
               "creds_per_s": tp["rate"], "steady_creds_per_s": tp["steady"],
               "latency": dist(lat), "publish_s": res["publish_s"],
               "publish_rate": n / res["publish_s"], "stages": {},
               "machine_busy": res["machine_busy"], "state": res.get("state")}
    if res.get("cold"):
        summary["warmup"] = report_warmup(res["cold"], res.get("idle"), res["cores"])
    print(f"\n=== backbone, {SUITES[res['suite']]}: {len(delivered)}/{n} credentials delivered "
          f"(failed {res['counts'].get('failed', 0)}) ===")
    if res.get("state"):
        print(f"  measured {res['state']}")
    print(f"  submitted {n} results in {res['publish_s']:.2f}s "
          f"({n / res['publish_s']:.0f}/s, broker-acked)")
    print(f"  END TO END: {tp['rate']:.1f} credentials/s  (N / (last delivered - first "
          f"submitted) = {len(delivered)} / {tp['last']:.1f}s); steady 10-90%: "
          f"{tp['steady']:.1f}/s")
    d = summary["latency"]
    print(f"  latency submitted -> delivered_at: p50 {fmt_s(d['p50'])}  p95 {fmt_s(d['p95'])}  "
          f"p99 {fmt_s(d['p99'])}  max {fmt_s(d['max'])}")
    print("\n  per stage (timestamps each service writes: decided_at / issued_at / "
          "registered_at / delivered_at; all taken when the service's batch handler starts,\n"
          "  delivered_at after the SMTP round): rate = items / (last - first submitted); "
          "steady = 10th..90th item; hop = this stage's time - previous stage's, per item")
    print(f"  {'stage':<12}{'count':>7}{'first':>9}{'last':>9}{'rate/s':>9}{'steady/s':>10}"
          f"{'hop p50':>10}{'hop p95':>10}{'hop p99':>10}")
    prev = submit
    order = [("decided", "assessment"), ("issued", "issuance"), ("registered", "registry"),
             ("delivered", "notify")]
    for label, svc in order:
        times = st[label]
        tps = throughput(list(times.values()), t0)
        hops = [times[k] - prev[k] for k in times if k in prev]
        hd = dist(hops)
        summary["stages"][label] = {"service": svc, "count": len(times), **tps,
                                    "hop": hd}
        print(f"  {label:<12}{len(times):>7}{tps['first']:>8.1f}s{tps['last']:>8.1f}s"
              f"{tps['rate']:>9.1f}{tps['steady']:>10.1f}{fmt_s(hd['p50']):>10}"
              f"{fmt_s(hd['p95']):>10}{fmt_s(hd['p99']):>10}")
        prev = times
    if res["smtp"]:
        sm = res["smtp"]
        print(f"  (SMTP sink received {len(sm)} of them; delivered_at - received at sink p50 "
              f"{fmt_s(pct([delivered[k] - sm[k] for k in sm if k in delivered], 50))})")
    nc = st.get("notify_created", {})
    if nc:
        hop = [delivered[k] - nc[k] for k in delivered if k in nc]
        print(f"  notify: created_at -> delivered_at p50 {fmt_s(pct(hop, 50))} "
              f"p95 {fmt_s(pct(hop, 95))} (mail delivery loop, after the consumer stored it)")
    print_cpu(f"the backbone run [{res['suite']}]", res["usage"], res["cores"],
              res["machine_busy"])
    per = {k: 1000 * v / max(len(delivered), 1) for k, v in res["usage"]["cpu"].items()}
    print("    CPU per delivered credential: " + ", ".join(
        f"{k.split(' ')[0]} {v:.2f}ms" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
        + f"; total {sum(per.values()):.1f}ms (2000/s on {res['cores']} cores needs "
        f"<= {1000 * res['cores'] / 2000:.1f}ms)")
    summary["cpu_ms_per_credential"] = per
    for name, split in res["usage"].get("by_database", {}).items():
        ms = {db: 1000 * v / max(len(delivered), 1) for db, v in split.items()}
        print(f"    of {name.split(' ')[0]}, by database: " + ", ".join(
            f"{db} {v:.3f}ms" for db, v in sorted(ms.items(), key=lambda kv: -kv[1])))
        summary.setdefault("db_cpu_ms_per_credential", {})[name] = ms
    summary["pg_per_credential"] = print_pg_window(res.get("pg"), len(delivered))
    summary["kafka_bytes_per_credential"] = print_kafka_bytes(res.get("kafka_bytes"),
                                                              len(delivered))
    if res.get("idle"):
        idle = res["idle"]
        print(f"    idle stack (no load, {idle['wall']:.0f}s before the run): " + ", ".join(
            f"{k.split(' ')[0]} {100 * v / idle['wall']:.0f}%" for k, v in sorted(
                idle["cpu"].items(), key=lambda kv: -kv[1])) + " of one core")
        summary["idle"] = idle
        # What the load itself cost: the stack's idle burn (polls, heartbeats) grows with
        # the wall time, which a busy machine stretches; subtracting it keeps runs comparable.
        net = net_per_credential(res["usage"], idle, len(delivered))
        print("    CPU per credential less the idle burn over the same wall time: " + ", ".join(
            f"{k.split(' ')[0]} {v:.2f}ms" for k, v in sorted(net.items(), key=lambda kv: -kv[1]))
            + f"; total {sum(net.values()):.2f}ms")
        summary["net_cpu_ms_per_credential"] = net
        # The driver publishes as the providers would and its SMTP sink stands in for the
        # mail relay: neither is part of the backbone that item 1's target is about.
        ours = {k: v for k, v in net.items() if not k.startswith("bench")}
        print(f"    the backbone alone (services, Kafka, PostgreSQL; not the driver and its SMTP "
              f"sink): {sum(v for k, v in per.items() if not k.startswith('bench')):.2f}ms, "
              f"{sum(ours.values()):.2f}ms less the idle burn")
    for name, jit in res["usage"].get("jit", {}).items():
        ms = 1000 * jit / max(len(delivered), 1)
        total = 1000 * res["usage"]["cpu"][name] / max(len(delivered), 1)
        print(f"    of {name}'s {total:.2f}ms, {ms:.2f}ms were its JIT compiler (a freshly "
              f"started JVM compiling its hot paths; a long-running one has done so): "
              f"{total - ms:.2f}ms without")
        summary.setdefault("jit_ms_per_credential", {})[name] = ms
    print_threads(res["usage"], len(delivered), "credential")
    health = res["health"]
    dl = {n: h.get("dead_lettered") for n, h in health.items() if h.get("dead_lettered")}
    if any(any(v.values()) for v in dl.values() if isinstance(v, dict)):
        print(f"  WARNING dead letters: {dl}")
    summary["usage"] = res["usage"]
    if res.get("statements"):
        summary["statements_per_credential"] = print_statements(res["statements"], n, 25)
        summary["statements"] = res["statements"]
    return summary


# ------------------------------------------------------------------------------------------
# latency below capacity: an open-loop phase at a fixed offered rate


async def run_latency(target: Target, args: argparse.Namespace, cores: int,
                      rnd: int = 1) -> dict[str, Any]:
    """Results offered at `--latency-rate` for `--latency-seconds`, sent on schedule whatever
    is still in flight (open loop); latency is measured from each chunk's scheduled time."""
    n = max(int(args.latency_rate * args.latency_seconds), 1)
    run_id = uuid.uuid4().hex[:8]
    wl = build_workload(n, run_id)
    if args.driver_heap == "frozen":
        # What the driver holds by now - the throughput run's workload and results, this
        # round's events - lives on: moved out of the collector's reach before the round,
        # a collection of the oldest generation during it walks only what the round makes.
        # Such a collection over the heap the burst left took 40-150 ms of the driver's loop,
        # which publishes on schedule and answers SMTP for notify (bench/e2e/README.md).
        gc.collect()
        gc.freeze()
    dbs = await connect_dbs(target)
    cp = None
    try:
        if rnd == 1 and args.warmup > 0 and args.warmup_checkpoint == "on":
            # The throughput run filled the segments the warm-up's checkpoint recycled; at a
            # few hundred per second a running server checkpoints every minute or so (every
            # max_wal_size / (1 + checkpoint_completion_target) of WAL) and writes into
            # recycled segments, not new ones. Not measured, like the one after the warm-up.
            cp = await checkpoint(dbs, "before the first latency round")
        meter = backbone_meter(target)
        sys_start = psutil.cpu_times()
        pg_start = await pg_counters(dbs)
        loops = stalls.Watch(target.service_urls,
                             target.state_dir / "logs" if target.state_dir else None,
                             str(target.stack.ca_file) if target.stack is not None
                             else target.manifest.get("tls", {}).get("ca"))
        await asyncio.to_thread(loops.begin)
        # PostgreSQL's wait events: a query every 50 ms from a thread of the driver (whose
        # loop publishes and answers SMTP), so only with --timeline, like the CPU sampler.
        waits = stalls.PgWaits(target.db_url("notify")).start() if args.timeline else None
        driver = stalls.DriverWatch(STALL_LOG_MS)
        driver.t0 = time.time()
        driver.start()
        kbytes = KafkaBytes(target)
        kbytes.begin()
        meter.begin()
        timeline = tail.Timeline(meter.groups, meter.include_children).start() \
            if args.timeline else None
        log(f"latency phase: {n} results offered at {args.latency_rate:g}/s, open loop, in "
            f"chunks of {args.latency_chunk} (run {run_id})")
        sub, _, pub_s = await publish(target.bootstrap, wl.events, args.latency_chunk,
                                      args.latency_rate)
        t0 = min(sub)
        log(f"latency phase: offered {n} in {pub_s:.2f}s")
        counts = await wait_delivered(dbs, wl, n, t0, time.monotonic() + args.timeout,
                                      args.stall, args.progress)
        usage = meter.end()
        kafka_bytes = kbytes.end()
        busy = machine_busy_fraction(sys_start, psutil.cpu_times())
        pg = pg_window(pg_start, await pg_counters(dbs))
        samples = timeline.stop() if timeline else None
        loop_stalls = await asyncio.to_thread(loops.end, t0)
        pg_waits = stalls.analyse_waits(await asyncio.to_thread(waits.stop), t0) \
            if waits else None
        driver_stalls = await driver.stop(t0 - driver.t0)
        stages = await collect_stages(dbs, wl)
    finally:
        for c in dbs.values():
            await c.close()
    smtp: dict[str, float] = {}
    if target.smtp is not None:
        email_key = dict(zip(wl.emails, wl.keys, strict=True))
        smtp = {email_key[e]: t for e, t in list(target.smtp.received.items())
                if e in email_key}
    return {"n": n, "rate": args.latency_rate, "t0": t0, "publish_s": pub_s,
            "submit": dict(zip(wl.keys, sub, strict=True)), "stages": stages, "smtp": smtp,
            "counts": counts, "usage": usage, "machine_busy": busy, "cores": cores,
            "timeline": samples, "pg": pg, "stalls": loop_stalls, "pg_waits": pg_waits,
            "driver_stalls": driver_stalls, "kafka_bytes": kafka_bytes, "checkpoint": cp,
            "stall_log_ms": int(target.env.get("MICROCRED_LOOP_STALL_LOG_MS", STALL_LOG_MS))}


ROUND_NAMES = {1: "the broker as the throughput run left it",
               2: "after the rounds before it at this rate"}



class GcPauses:
    """The driver's own garbage-collector pauses (its loop also answers SMTP for notify: a
    pause here delays every mail's "accepted", which the latency counts), each with when it
    ended (wall clock)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started,
                                time.time()))

    def take(self) -> list[tuple[int, float, float]]:
        taken, self.pauses = self.pauses, []
        return taken


def report_gc(pauses: list[tuple[int, float, float]], t0: float) -> dict[str, Any]:
    old = [(d, at) for g, d, at in pauses if g == 2]
    total = sum(d for _, d, _ in pauses)
    longest = max(old, default=(0.0, t0))
    print(f"  the driver's garbage collector: {len(pauses)} collections, {1000 * total:.0f} ms "
          f"in all; {len(old)} of the oldest generation, longest "
          f"{1000 * longest[0]:.0f} ms" + (f" (ended {longest[1] - t0:.2f} s into the round)"
                                           if old else ""))
    return {"collections": len(pauses), "ms": 1000 * total, "gen2": len(old),
            "gen2_max_ms": 1000 * longest[0], "gen2_max_at_s": longest[1] - t0 if old else None}


def report_latency(res: dict[str, Any], idle_burn: dict[str, Any] | None = None,
                   rnd: int = 1) -> dict[str, Any]:
    n, submit, st = res["n"], res["submit"], res["stages"]
    # "mailed" = the SMTP server accepted it (the sink's clock, i.e. this machine's); with
    # --reuse-stack there is no sink of ours, and notify's delivered_at stands in for it.
    mailed, source = (res["smtp"], "accepted by the SMTP server") if res["smtp"] else (
        st["delivered"], "notifications.delivered_at")
    lat = dist([mailed[k] - submit[k] for k in mailed if k in submit])
    tp = throughput(list(mailed.values()), res["t0"])
    print(f"\n=== latency below capacity, round {rnd} ({ROUND_NAMES[min(rnd, 2)]}): {n} "
          f"results offered at {res['rate']:g}/s (open loop: sent on schedule, timed from "
          "the scheduled send) ===")
    if (cp := res.get("checkpoint")) and cp.get("wal_after"):
        print(f"  after a CHECKPOINT ({cp['seconds']:.2f}s, not measured): "
              f"{cp['wal_after']['ahead']:.0f} WAL segments recycled for the rounds")
    print(f"  {len(mailed)}/{n} mailed (failed {res['counts'].get('failed', 0)}); offered over "
          f"{res['publish_s']:.1f}s, mailed at {tp['steady']:.0f}/s steady")
    print(f"  LATENCY submitted -> mailed ({source}): p50 {fmt_s(lat['p50'])}  "
          f"p95 {fmt_s(lat['p95'])}  p99 {fmt_s(lat['p99'])}  max {fmt_s(lat['max'])}"
          f"   (goal: p99 <= 500ms)")
    prev, hops = submit, {}
    for label in ("decided", "issued", "registered", "delivered"):
        times = st[label]
        hops[label] = dist([times[k] - prev[k] for k in times if k in prev])
        prev = times
    print("  per hop p50 / p99: " + ", ".join(
        f"{label} {fmt_s(h['p50']).strip()} / {fmt_s(h['p99']).strip()}"
        for label, h in hops.items()))
    # The delivered hop in two: to notify (registry's relay, Kafka, notify's consumer up to
    # its transaction's start, which is the row's created_at) and notify's delivery loop.
    stored, registered = st.get("notify_created", {}), st["registered"]
    if stored:
        reach = dist([stored[k] - registered[k] for k in stored if k in registered])
        loop_ = dist([mailed[k] - stored[k] for k in mailed if k in stored])
        print(f"  delivered hop: registered -> stored by notify's consumer "
              f"{fmt_s(reach['p50']).strip()} / {fmt_s(reach['p99']).strip()}, stored -> "
              f"mailed (notify's delivery loop) {fmt_s(loop_['p50']).strip()} / "
              f"{fmt_s(loop_['p99']).strip()}")
    per = {k: 1000 * v / max(len(mailed), 1) for k, v in res["usage"]["cpu"].items()}
    busy = res["machine_busy"] * res["usage"]["wall"] * res["cores"]
    print(f"  CPU per credential at this rate: total {sum(per.values()):.2f}ms ("
          + ", ".join(f"{k.split(' ')[0]} {v:.2f}" for k, v in sorted(
              per.items(), key=lambda kv: -kv[1]))
          + f"); {max(busy - sum(res['usage']['cpu'].values()), 0):.1f} of {busy:.1f} busy "
          "core-s were not ours")
    by_db = {}
    for name, split in res["usage"].get("by_database", {}).items():
        by_db[name] = {db: 1000 * v / max(len(mailed), 1) for db, v in split.items()}
        print(f"    of {name.split(' ')[0]}, by database: " + ", ".join(
            f"{db} {v:.3f}ms" for db, v in sorted(by_db[name].items(), key=lambda kv: -kv[1])))
    pg_per = print_pg_window(res.get("pg"), len(mailed))
    kafka_per = print_kafka_bytes(res.get("kafka_bytes"), len(mailed))
    # At a few hundred per second the stack's idle burn (Kafka's and the services' polls,
    # heartbeats) and a fresh broker's JIT compiler are a large part of that figure; what
    # the credentials themselves cost is the rest.
    jit = {k: 1000 * v / max(len(mailed), 1) for k, v in res["usage"].get("jit", {}).items()}
    idle, net = idle_burn, {}
    if idle:
        wall = res["usage"]["wall"]
        # the probe's own JIT seconds are left out of its burn: this phase's are counted
        burn = {k: v - idle.get("jit", {}).get(k, 0.0) for k, v in idle["cpu"].items()}
        net = {k: max(v - 1000 * burn.get(k, 0.0) * wall / idle["wall"]
                      / max(len(mailed), 1) - jit.get(k, 0.0), 0.0) for k, v in per.items()}
        print(f"  of which the idle burn over {wall:.0f}s: "
              f"{sum(per.values()) - sum(net.values()) - sum(jit.values()):.2f}ms, "
              + "".join(f"{k}'s JIT compiler {v:.2f}ms, " for k, v in jit.items())
              + f"the credentials themselves {sum(net.values()):.2f}ms ("
              + ", ".join(f"{k.split(' ')[0]} {v:.2f}" for k, v in sorted(
                  net.items(), key=lambda kv: -kv[1])) + ")")
    # The slowest 1 %: a stall or queueing (bench/e2e/tail.py); the timings are kept.
    rows = tail.per_result(submit, st, mailed)
    slowest = tail.analyse(rows, res.get("timeline"), res["cores"])
    if res.get("stalls"):
        stalls.report(res["stalls"], res["stall_log_ms"])
    stalls.report_waits(res.get("pg_waits") or {})
    stalls.report_driver(res.get("driver_stalls") or [], STALL_LOG_MS)
    return {"service_stalls": res.get("stalls"), "pg_waits": res.get("pg_waits"),
            "driver_stalls": res.get("driver_stalls"),
            "round": rnd, "n": n,
            "offered_per_s": res["rate"], "mailed": len(mailed),
            "latency": lat, "tail": slowest, "timeline": res.get("timeline"),
            "per_result": {k: [None if x is None else round(x, 4) for x in v]
                           for k, v in rows.items()},
            "latency_source": source, "hops": hops, "cpu_ms_per_credential": per,
            "net_cpu_ms_per_credential": net, "jit_ms_per_credential": jit,
            "db_cpu_ms_per_credential": by_db, "pg_per_credential": pg_per,
            "kafka_bytes_per_credential": kafka_per,
            "usage": res["usage"], "machine_busy": res["machine_busy"]}


# ------------------------------------------------------------------------------------------
# bare-broker baseline


# What the backbone's hops put on Kafka per credential (bench/e2e README, wave 17: log
# growth per topic in a burst, bytes of a record as stored), for `--baseline-sizes backbone`:
# relay k forwards each record with its value cut or padded so that the stored record is
# about the size of the backbone's k-th hop's (decisions, credentials.issued,
# credentials.registered, notifications); the results the driver sends are the same.
BACKBONE_HOP_BYTES = (830, 4840, 1440, 480)


def _relay_process(bootstrap: str, src: str, dst: str, group: str, seq_header: str,
                   record: bool, warm: int, expected: int, ready: Any, stop: Any,
                   out: Any, max_records: int, record_bytes: int | None = None) -> None:
    asyncio.run(_relay(bootstrap, src, dst, group, seq_header, record, warm, expected, ready,
                       stop, out, max_records, record_bytes))


def _sized(value: bytes, stored: int, overhead: int) -> bytes:
    """`value` cut or padded (spaces) so that the record takes about `stored` bytes."""
    size = max(stored - overhead, 0)
    return value[:size] if len(value) >= size else value + b" " * (size - len(value))


async def _relay(bootstrap: str, src: str, dst: str, group: str, seq_header: str,
                 record: bool, warm: int, expected: int, ready: Any, stop: Any, out: Any,
                 max_records: int, record_bytes: int | None = None) -> None:
    consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_interval_ms=600_000)
    # The same producer settings as the services' outbox relay (microcred_shared.outbox).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5,
                                max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    seen: dict[int, float] = {}
    warm_seen = 0
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=max_records)
            if not batch:
                continue
            now = time.time()
            futs = []
            for recs in batch.values():
                for r in recs:
                    if record:
                        seq = int(dict(r.headers)[seq_header])
                        if seq < 0:
                            warm_seen += 1
                        else:
                            seen.setdefault(seq, now)
                    value = r.value if record_bytes is None else _sized(
                        r.value, record_bytes, r.serialized_key_size + 250)
                    futs.append(await producer.send(dst, value, key=r.key,
                                                    headers=list(r.headers)))
            await asyncio.gather(*futs)
            await consumer.commit()  # after the forward is durable, as the services do
            if record:
                if warm_seen >= warm and warm:
                    out.put(("warm", warm_seen))
                    warm = 0
                if len(seen) >= expected:
                    out.put(("done", seen))
                    seen = {}
                    expected = 1 << 62
    finally:
        if record and seen:
            out.put(("partial", seen))
        await producer.stop()
        await consumer.stop()


def encode_raw(events: list[Any], warm: bool) -> list[tuple[bytes, bytes, list[Any]]]:
    """The exact bytes a provider publishes (payload, key, CloudEvents headers) plus a seq
    header, encoded before the clock starts: the baseline measures the broker path only."""
    from microcred_shared.contract.cloudevents import encode
    from microcred_testkit.backbone import provider_headers

    out = []
    for i, e in enumerate(events):
        seq = -(i + 1) if warm else i
        out.append((encode(e), e.key(),
                    [*provider_headers(e), ("bench_seq", str(seq).encode())]))
    return out


async def publish_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[Any]]],
                      chunk: int, inflight: int = 1) -> tuple[list[float], float]:
    """Same producer (ProviderPublisher's settings) and chunking as the backbone run."""
    from microcred_testkit.backbone import ProviderPublisher

    sub = [0.0] * len(records)
    t_begin = time.time()
    gate = asyncio.Semaphore(inflight)
    async with ProviderPublisher(bootstrap) as pub:
        producer = pub.producer

        async def one(start: int, part: list[Any]) -> None:
            try:
                t = time.time()
                futs = [await producer.send(topic, v, key=k, headers=h) for v, k, h in part]
                await asyncio.gather(*futs)
                for i in range(start, start + len(part)):
                    sub[i] = t
            finally:
                gate.release()

        tasks = []
        for start in range(0, len(records), chunk):
            await gate.acquire()
            tasks.append(asyncio.create_task(one(start, records[start:start + chunk])))
        await asyncio.gather(*tasks)
    return sub, time.time() - t_begin


async def run_baseline(target: Target, args: argparse.Namespace, cores: int) -> dict[str, Any]:
    from microcred_devstack import create_topics

    run_id = uuid.uuid4().hex[:8]
    topics = [f"bench.{run_id}.hop{i}" for i in range(HOPS + 1)]
    await create_topics(target.bootstrap, topics, partitions=4)
    log(f"baseline: topics {topics[0]} .. {topics[-1]} (4 partitions each), {HOPS} relays, "
        f"records sized as the {args.baseline_sizes}")
    records = encode_raw(build_workload(args.n, run_id).events, False)
    # the relays' own first records (the broker is warm by now): as before wave 19
    warm = encode_raw(build_workload(WARMUP_PRELUDE, run_id + "w").events, True)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    out = ctx.Queue()
    procs, readies = [], []
    for hop in range(HOPS):
        ready = ctx.Event()
        last = hop == HOPS - 1
        p = ctx.Process(target=_relay_process, name=f"bench-relay{hop + 1}", args=(
            target.bootstrap, topics[hop], topics[hop + 1], f"bench.{run_id}.relay{hop + 1}",
            "bench_seq", last, len(warm), args.n, ready, stop, out, args.batch_size or 500,
            BACKBONE_HOP_BYTES[hop] if args.baseline_sizes == "backbone" else None),
            daemon=True)
        p.start()
        procs.append(p)
        readies.append(ready)
    result: dict[str, Any] = {"topics": topics}
    try:
        for ready in readies:
            if not await asyncio.to_thread(ready.wait, 120):
                raise RuntimeError("a baseline relay did not get its partitions in 120s")
        loop_get = lambda t: out.get(timeout=t)  # noqa: E731
        if warm:
            await publish_raw(target.bootstrap, topics[0], warm, args.chunk)
            kind, _ = await asyncio.to_thread(loop_get, 120)
            log(f"baseline warm-up through ({kind})")
        groups = {f"relay{i + 1}": [p.pid] for i, p in enumerate(procs) if p.pid}
        if (kp := target.kafka_pid()):
            groups["kafka"] = [kp]
        groups["bench driver"] = [os.getpid()]
        meter = CpuMeter(groups, set())
        sys_start = psutil.cpu_times()
        meter.begin()
        sub, pub_s = await publish_raw(target.bootstrap, topics[0], records, args.chunk,
                                       args.inflight)
        log(f"baseline: published {args.n} in {pub_s:.2f}s")
        try:
            kind, seen = await asyncio.to_thread(loop_get, min(args.timeout, 600))
        except Exception:  # queue.Empty
            kind, seen = "timeout", {}
        usage = meter.end()
        busy = machine_busy_fraction(sys_start, psutil.cpu_times())
        result.update(kind=kind, seen=seen, sub=sub, pub_s=pub_s, usage=usage, busy=busy)
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(10)
        with contextlib.suppress(Exception):
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=target.bootstrap)
            await admin.start()
            await admin.delete_topics(topics)
            await admin.close()
    result["cores"] = cores
    return result


def report_baseline(res: dict[str, Any], n: int,
                    idle: dict[str, Any] | None = None) -> dict[str, Any]:
    seen, sub = res.get("seen", {}), res.get("sub", [])
    if not seen:
        print("\n=== baseline: no result ===")
        return {}
    t0 = min(sub)
    lat = [t - sub[i] for i, t in seen.items()]
    tp = throughput(list(seen.values()), t0)
    d = dist(lat)
    print(f"\n=== bare-broker baseline: {len(seen)}/{n} messages through {HOPS} plain aiokafka "
          f"relays (consume -> produce acks=all -> commit), same payloads ===")
    print(f"  published in {res['pub_s']:.2f}s ({n / res['pub_s']:.0f}/s)")
    print(f"  END TO END: {tp['rate']:.0f} msgs/s  (N / (last received at hop {HOPS} - first "
          f"submitted) = {len(seen)} / {tp['last']:.2f}s); steady 10-90%: {tp['steady']:.0f}/s")
    print(f"  latency: p50 {fmt_s(d['p50'])}  p95 {fmt_s(d['p95'])}  p99 {fmt_s(d['p99'])}  "
          f"max {fmt_s(d['max'])}")
    print_cpu("the baseline run", res["usage"], res["cores"], res["busy"])
    per = {k: 1000 * v / max(len(seen), 1) for k, v in res["usage"]["cpu"].items()}
    print("    CPU per message (all 4 hops): " + ", ".join(
        f"{k} {v:.3f}ms" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
    print_threads(res["usage"], len(seen), "message (all 4 hops)")
    usage, kafka = res["usage"], res["usage"]["cpu"].get("kafka")
    if kafka is not None:
        # Like for like with the backbone's "less the idle burn" and "without" the JIT: the
        # services stand idle during the baseline, and their polling (the stack's idle burn
        # measured before the throughput run, JIT apart) is the broker's here too.
        jit = usage.get("jit", {}).get("kafka", 0.0)
        burn = 0.0
        if idle and idle.get("wall"):
            burn = max(idle["cpu"].get("kafka", 0.0) - idle.get("jit", {}).get("kafka", 0.0),
                       0.0) * usage["wall"] / idle["wall"]
        m = max(len(seen), 1)
        print(f"    of kafka's {1000 * kafka / m:.3f}ms per message, {1000 * jit / m:.3f}ms "
              f"were its JIT compiler and {1000 * burn / m:.3f}ms the stack's idle burn: "
              f"{1000 * max(kafka - jit - burn, 0.0) / m:.3f}ms without either")
    return {"n": n, "received": len(seen), "msgs_per_s": tp["rate"],
            "steady_msgs_per_s": tp["steady"], "latency": d, "usage": res["usage"]}


# ------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="results to push (default 10000)")
    ap.add_argument("--chunk", type=int, default=500, help="results per publish_many call")
    ap.add_argument("--inflight", type=int, default=4,
                    help="publish_many chunks awaiting broker acks at once (default 4; 1 = "
                         "strictly one chunk after the other), for both runs; not with --rate "
                         "(open loop: chunks go out on schedule)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open-loop submit rate in results/s (default 0: as fast as possible)")
    ap.add_argument("--warmup", type=int, default=WARMUP_DEFAULT,
                    help="results through the whole backbone before the measured run, not "
                         "counted in it; their own figures are printed as the cold line "
                         f"(default {WARMUP_DEFAULT}; 0: a cold backbone, as before wave 19: "
                         f"a {WARMUP_PRELUDE}-result prelude only, no checkpoint)")
    ap.add_argument("--warmup-slices", type=int, default=1,
                    help="the warm-up in this many bursts, one after the other, each "
                         "waited for and printed with its own CPU per credential: how "
                         "the figures settle as the backbone warms (default 1)")
    ap.add_argument("--warmup-checkpoint", choices=("on", "off"), default="on",
                    help="a CHECKPOINT after the warm-up and another before the first "
                         "latency round (neither measured), so that the WAL segments filled "
                         "before are recycled as on a server that has checkpointed before "
                         "(default on; only with --warmup > 0)")
    ap.add_argument("--cryptosuite", choices=("rdfc", "jcs", "both"), default="rdfc",
                    help="signing suite of issuance (default rdfc = eddsa-rdfc-2022)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="MICROCRED_BATCH_SIZE for the services (default: theirs, 500)")
    ap.add_argument("--smtp-sink", choices=("lean", "aiosmtpd"), default="lean",
                    help="the SMTP server the mails go to: a lean responder (default) or "
                         "aiosmtpd (~0.5 ms more CPU per mail on this machine's cores)")
    ap.add_argument("--driver-heap", choices=("frozen", "plain"), default="frozen",
                    help="before each latency round, collect and freeze the driver's heap "
                         "(frozen, the default) or leave its collector as it is (plain)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", type=_setting,
                    help="a setting for every service, e.g. MICROCRED_CONSUMER_LINGER_MS=0 "
                         "(repeatable; MICROCRED_* of the caller's shell are not passed on)")
    ap.add_argument("--idle-probe", type=float, default=5.0,
                    help="seconds of CPU measurement with no load before the run (0: off)")
    ap.add_argument("--latency-rate", type=float, default=500.0,
                    help="latency phase: results/s offered, open loop (default 500)")
    ap.add_argument("--latency-seconds", type=float, default=10.0,
                    help="latency phase: seconds of offered load (default 10; 0: no phase)")
    ap.add_argument("--latency-rounds", type=int, default=2,
                    help="latency phase: rounds run back to back, each printed; round 1 "
                         "meets the broker as the throughput run left it, round 2 one "
                         "warmed by round 1 (default 2)")
    ap.add_argument("--timeline", action="store_true",
                    help="latency phase: sample every process's CPU each 100 ms, to say what "
                    "ran while the slowest 1 %% were in flight (bench/e2e/tail.py)")
    ap.add_argument("--latency-chunk", type=int, default=5,
                    help="latency phase: results per scheduled send (default 5)")
    ap.add_argument("--ingest", choices=("kafka", "http", "http-batch"), default="kafka",
                    help="how results come in: Kafka publishing (default), one per HTTP "
                    "request from 16 keep-alive clients, or HTTP batches of 1000")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--baseline-only", action="store_true")
    ap.add_argument("--count-requests", action="store_true",
                    help="count every Kafka request of the services, the baseline's relays "
                    "and the driver by client and API (bench/e2e/kafka_requests), and print "
                    "them per credential for the throughput run, each latency round and the "
                    "baseline")
    ap.add_argument("--baseline-sizes", choices=("results", "backbone"), default="results",
                    help="the bare relays forward each result as it is (default), or with "
                    "its value cut or padded to the size of the backbone's record at that "
                    "hop (decisions, credentials.issued, credentials.registered, "
                    "notifications): the same bytes through the broker as the backbone")
    ap.add_argument("--reuse-stack", action="store_true",
                    help="use the running `make up` stack (.state/stack.json) instead")
    ap.add_argument("--state-dir", default=None, help="with --reuse-stack: its state dir")
    ap.add_argument("--profile", action="store_true", help="py-spy every service process")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    ap.add_argument("--profile-gil", action="store_true",
                    help="py-spy --gil: only samples holding the GIL (CPU, not waits on a "
                         "loaded machine)")
    ap.add_argument("--profile-nonblocking", action="store_true",
                    help="py-spy --nonblocking (less overhead, less exact stacks)")
    ap.add_argument("--top", type=int, default=12, help="hotspots shown per service")
    ap.add_argument("--otlp", action="store_true",
                    help="export traces to an in-process OTLP collector (off by default)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds to wait for the deliveries of one run (default 1800)")
    ap.add_argument("--stall", type=float, default=180.0,
                    help="give up after this many seconds without a new delivery")
    ap.add_argument("--progress", type=float, default=5.0, help="progress line every N s")
    ap.add_argument("--out", default=None,
                    help="output dir for summary.json and profiles (default bench/e2e/out/<ts>)")
    ap.add_argument("--analyse", metavar="DIR", default=None,
                    help="only print the hotspots of the *.pyspy.txt files kept in DIR")
    ap.add_argument("--pg-statements", action="store_true",
                    help="count PostgreSQL statements per credential (pg_stat_statements, "
                    "own stack only)")
    ap.add_argument("--keep-state", action="store_true",
                    help="keep the temp state dir (logs) of the stack it started")
    return ap.parse_args(argv)


_CLEANUP_LOCK = threading.Lock()
_CLEANED = False


def cleanup(target: Target | None, profiler: Profiler | None, keep: bool) -> None:
    global _CLEANED
    with _CLEANUP_LOCK:
        if _CLEANED:
            return
        _CLEANED = True
        if profiler:
            with contextlib.suppress(Exception):
                profiler.stop()
        if target is None or target.reused:
            return
        log("stopping the stack")
        with contextlib.suppress(Exception):
            stopped = target.stack.down()
            log(f"stopped: {', '.join(stopped)}")
        if target.smtp:
            target.smtp.stop()
        if getattr(target, "otlp", None):
            with contextlib.suppress(Exception):
                target.otlp.stop()  # type: ignore[attr-defined]
        if target.state_dir and not keep:
            shutil.rmtree(target.state_dir, ignore_errors=True)
        elif target.state_dir:
            log(f"state (logs) kept in {target.state_dir}")


def main() -> int:
    args = parse_args()
    if args.analyse:
        for path in sorted(Path(args.analyse).glob("*.pyspy.txt")):
            prof = analyse_profile(path, args.profile_rate, args.top)
            print_profile(path.name.removesuffix(".pyspy.txt"), prof, args.top, None)
        return 0
    suites = ["rdfc", "jcs"] if args.cryptosuite == "both" else [args.cryptosuite]
    out_dir = Path(args.out) if args.out else HERE / "out" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    requests_dir = count_requests(out_dir / "kafka-requests") if args.count_requests else None
    m = machine()
    cores = m["affinity"]
    print(f"machine: {m['nproc']} CPUs ({m['affinity']} usable), {m['cpu_model']}, "
          f"{m['mem_total_gib']} GiB RAM ({m['mem_available_gib']} GiB available), "
          f"kernel {m['kernel']}, Python {m['python']}, load average "
          f"{', '.join(f'{x:.2f}' for x in m['loadavg'])} before the run "
          "(shared machine: other work adds noise)", flush=True)
    target: Target | None = None
    profiler = Profiler(out_dir / "profiles", args.profile_rate, args.profile_nonblocking,
                        args.profile_gil) \
        if args.profile else None
    if profiler and not profiler.exe:
        print("--profile needs py-spy: `uv run --with py-spy python bench/e2e/run.py ...`")
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    hard_deadline = (args.timeout + 900) * (len(suites) + 1)

    def watchdog() -> None:
        log(f"watchdog: still running after {hard_deadline:.0f}s; cleaning up and exiting")
        cleanup(target, profiler, args.keep_state)
        os._exit(124)

    dog = threading.Timer(hard_deadline, watchdog)
    dog.daemon = True
    dog.start()
    summary: dict[str, Any] = {"machine": m, "args": vars(args), "backbone": [],
                               "baseline": None, "state": backbone_state(args)}
    rc = 0
    try:
        target = reuse_stack(args) if args.reuse_stack else start_own_stack(args, suites[0])
        if not args.baseline_only:
            for i, suite in enumerate(suites):
                if args.reuse_stack and i:
                    log("--reuse-stack: cannot switch the running issuance's suite; skipping")
                    break
                if i:
                    restart_issuance(target, suite)
                res = asyncio.run(run_backbone(target, args, suite, profiler, cores))
                s = report_backbone(res)
                if requests_dir:
                    s["kafka_requests"] = report_requests(requests_dir, res["usage"],
                                                          s["delivered"], "credential")
                if profiler:
                    print(f"\n=== hotspots per service [{SUITES[suite]}] (py-spy, "
                          f"{args.profile_rate} Hz, during the measured window) ===")
                    s["profiles"] = {}
                    for name, path in sorted(profiler.files.items()):
                        prof = analyse_profile(path, args.profile_rate, args.top)
                        print_profile(name, prof, args.top,
                                      s.get("usage", {}).get("cpu", {}).get(name))
                        s["profiles"][name] = {k: v for k, v in prof.items()}
                    profiler.files = {}
                summary["backbone"].append(s)
                if s["delivered"] < args.n:
                    rc = 1
                if i == 0 and args.latency_seconds > 0 and args.latency_rate > 0:
                    # Round 1 meets the broker as the throughput run left it (its JIT
                    # compiler still busy); each later round follows the one before at the
                    # same rate, as a broker that has run for hours would be met.
                    pauses = GcPauses()
                    for rnd in range(1, max(args.latency_rounds, 1) + 1):
                        pauses.take()
                        lres = asyncio.run(run_latency(target, args, cores, rnd))
                        collected = pauses.take()
                        rep = report_latency(lres, res.get("idle"), rnd)
                        rep["driver_gc"] = report_gc(collected, lres["t0"])
                        rep["kafka_requests"] = report_round_kafka(
                            requests_dir, lres["usage"], rep["mailed"])
                        rep["state"] = (f"{res['state']}, then the throughput run"
                                        + (" and a CHECKPOINT" if lres.get("checkpoint")
                                           else "")
                                        + (" and the rounds before" if rnd > 1 else ""))
                        rep["checkpoint"] = lres.get("checkpoint")
                        summary.setdefault("latency_rounds", []).append(rep)
                        summary.setdefault("latency", rep)  # round 1, as before
                        if rep["mailed"] < lres["n"]:
                            rc = 1
        if not args.skip_baseline:
            base = asyncio.run(run_baseline(target, args, cores))
            summary["baseline"] = report_baseline(
                base, args.n, summary["backbone"][0].get("idle") if summary["backbone"] else None)
            if not summary["baseline"]:
                rc = 1
            else:
                summary["baseline"]["state"] = (
                    f"warm: its relays after {WARMUP_PRELUDE} records, on the broker the "
                    "backbone's runs left")
                if requests_dir:
                    b = summary["baseline"]
                    b["kafka_requests"] = report_requests(requests_dir, b["usage"],
                                                          b["received"], "message (all 4 hops)")
        if summary["backbone"] and summary["baseline"]:
            print("\n=== summary ===")
            b = summary["baseline"]
            print(f"  bare-broker baseline: {b['msgs_per_s']:.0f} msgs/s end to end, p50 "
                  f"{fmt_s(b['latency']['p50'])} p95 {fmt_s(b['latency']['p95'])} p99 "
                  f"{fmt_s(b['latency']['p99'])}")
            for s in summary["backbone"]:
                ratio = s["creds_per_s"] / b["msgs_per_s"] if b["msgs_per_s"] else float("nan")
                s["ratio_to_baseline"] = ratio
                print(f"  backbone {s['suite']}: {s['creds_per_s']:.1f} credentials/s end to "
                      f"end (steady {s['steady_creds_per_s']:.1f}/s), p50 "
                      f"{fmt_s(s['latency']['p50'])} p95 {fmt_s(s['latency']['p95'])} p99 "
                      f"{fmt_s(s['latency']['p99'])};  backbone/baseline = {ratio:.4f} "
                      f"({100 * ratio:.2f}%, 1/{1 / ratio:.0f})" if ratio else "")
                print(f"    goal 2000 credentials/s: {100 * s['creds_per_s'] / 2000:.1f}% of it")
                print(f"    measured {s['state']}")
                for label, key in (("CPU per credential", "cpu_ms_per_credential"),
                                   ("less idle burn", "net_cpu_ms_per_credential")):
                    if (per := s.get(key)):
                        print(f"    {label} {sum(per.values()):.2f}ms: " + ", ".join(
                            f"{k.split(' ')[0]} {v:.2f}" for k, v in sorted(
                                per.items(), key=lambda kv: -kv[1])))
                if (w := s.get("warmup")):
                    per = w["net_cpu_ms_per_credential"]
                    print(f"    cold (the warm-up's {w['delivered']} credentials, not counted): "
                          f"less idle burn {sum(per.values()):.2f}ms: " + ", ".join(
                              f"{k.split(' ')[0]} {v:.2f}" for k, v in sorted(
                                  per.items(), key=lambda kv: -kv[1])))
        for rnd, lat in enumerate(summary.get("latency_rounds", []), 1):
            print(f"  latency below capacity ({lat['offered_per_s']:g}/s offered, open loop, "
                  f"round {rnd}: {ROUND_NAMES[min(rnd, 2)]}), submitted -> mailed: p50 "
                  f"{fmt_s(lat['latency']['p50'])} p95 {fmt_s(lat['latency']['p95'])} p99 "
                  f"{fmt_s(lat['latency']['p99'])}; CPU per credential "
                  f"{sum(lat['cpu_ms_per_credential'].values()):.2f}ms")
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc})")
        rc = 130
    finally:
        dog.cancel()
        cleanup(target, profiler, args.keep_state)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        log(f"summary written to {out_dir / 'summary.json'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
