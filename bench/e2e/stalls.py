"""What held up each service's event loop during a latency round (issue 12, item 3).

Each service measures how late a heartbeat of its own wakes and its garbage collector's
pauses (`microcred_shared.stalls`): histograms at `GET /metrics` and, for a stall of
`MICROCRED_LOOP_STALL_LOG_MS` or more (run.py sets 50), a warning line in its log with the
time, how long its thread ran meanwhile and what the collector took. run.py reads both at
the start and end of every round and prints, per service: the stalls (how many, the worst
and when, busy or starved), and the collector's pauses by generation.

A stall whose thread ran about as long as the window is work in the loop (a long step, a
collection); one whose thread hardly ran is the process kept off a core (or a blocking
call).
"""

from __future__ import annotations

import re
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

STALL = re.compile(
    r"event loop stalled: woke (?P<late>\d+) ms late at (?P<at>[\d.]+) \(over (?P<window>\d+) "
    r"ms its thread ran (?P<ran>\d+) ms and waited (?P<queued>\d+) ms for a core; garbage "
    r"collector (?P<gc>\d+) ms in (?P<n>\d+) collections, oldest generation (?P<gen>-?\d+)\)")
SAMPLE = re.compile(r"^(?P<name>microcred_(?:gc_pause|event_loop_lag|mail_group_commit|mail_send)"
                    r"_seconds_"
                    r"(?:count|sum|bucket))(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def scrape(url: str, cafile: str | None = None) -> dict[str, float]:
    """The services' stall and collector samples from `GET /metrics`, keyed by line (the
    local stack's CA for a service that serves TLS)."""
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=15, context=context) as resp:
            text = resp.read().decode()
    except OSError as exc:
        print(f"  ({url}/metrics not read: {exc})")
        return {}
    out = {}
    for line in text.splitlines():
        if (m := SAMPLE.match(line)):
            out[f"{m['name']}{{{m['labels'] or ''}}}"] = float(m["value"])
    return out


class Watch:
    """Where each service's log ends and its counters stand at the start of a round."""

    def __init__(self, urls: dict[str, str], log_dir: Path | None,
                 cafile: str | None = None) -> None:
        self.urls, self.log_dir, self.cafile = urls, log_dir, cafile
        self.offsets: dict[str, int] = {}
        self.before: dict[str, dict[str, float]] = {}

    def _log(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    def begin(self) -> None:
        for name, url in self.urls.items():
            path = self._log(name)
            self.offsets[name] = path.stat().st_size if path and path.exists() else 0
            self.before[name] = scrape(url, self.cafile)

    def end(self, t0: float) -> dict[str, Any]:
        """Per service: the round's stalls (from the log) and collector pauses (counters)."""
        out: dict[str, Any] = {}
        for name, url in self.urls.items():
            after, before = scrape(url, self.cafile), self.before.get(name, {})
            delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
            stalls = []
            path = self._log(name)
            if path and path.exists():
                with path.open("rb") as f:
                    f.seek(self.offsets.get(name, 0))
                    text = f.read().decode(errors="replace")
                for m in STALL.finditer(text):
                    stalls.append({"late_ms": int(m["late"]), "at_s": float(m["at"]) - t0,
                                   "window_ms": int(m["window"]), "ran_ms": int(m["ran"]),
                                   "queued_ms": int(m["queued"]),
                                   "gc_ms": int(m["gc"]), "gc_collections": int(m["n"]),
                                   "gc_oldest": int(m["gen"])})
            gc = {}
            for g in (0, 1, 2):
                lab = f'generation="{g}"'
                n = delta.get(f"microcred_gc_pause_seconds_count{{{lab}}}", 0.0)
                gc[g] = {"collections": int(n),
                         "ms": 1000 * delta.get(f"microcred_gc_pause_seconds_sum{{{lab}}}", 0.0),
                         "max_le_ms": _worst_bucket(delta, "microcred_gc_pause_seconds", lab, n)}
            beats = delta.get("microcred_event_loop_lag_seconds_count{}", 0.0)
            out[name] = {"stalls": stalls, "gc": gc, "beats": int(beats),
                         "lag_max_le_ms": _worst_bucket(delta, "microcred_event_loop_lag_seconds",
                                                        "", beats)}
            for step in ("mail_group_commit", "mail_send"):  # notify's delivery loop
                metric = f"microcred_{step}_seconds"
                if (n := delta.get(f"{metric}_count{{}}")) is not None:
                    out[name][step] = {
                        "count": int(n), "ms": 1000 * delta.get(f"{metric}_sum{{}}", 0.0),
                        "max_le_ms": _worst_bucket(delta, metric, "", n),
                        "over_100ms": int(n - delta.get(f'{metric}_bucket{{le="0.1"}}', n))}
        return out


def _worst_bucket(delta: dict[str, float], name: str, labels: str, count: float) -> float | None:
    """The upper bound (ms) of the smallest bucket that holds every observation of the
    window: the worst was at most that; None if nothing was observed."""
    if count <= 0:
        return None
    bounds = []
    for key, v in delta.items():
        if key.startswith(name + "_bucket{") and (not labels or labels in key):
            le = re.search(r'le="([^"]+)"', key)
            if le:
                bounds.append((float(le[1]), v))
    for le, v in sorted(bounds):
        if v >= count:
            return 1000 * le
    return None


def report(per_service: dict[str, Any], threshold_ms: int) -> None:
    print(f"  the services' event loops (stalls >= {threshold_ms} ms, from their logs) and "
          "garbage collectors (GET /metrics):")
    for name, s in per_service.items():
        stalls = s["stalls"]
        if stalls:
            worst = max(stalls, key=lambda x: x["late_ms"])
            what = (f"{len(stalls)} stalls, worst {worst['late_ms']} ms at "
                    f"{worst['at_s']:.2f} s (of {worst['window_ms']} ms its thread ran "
                    f"{worst['ran_ms']}, waited {worst['queued_ms']} for a core; collector "
                    f"{worst['gc_ms']} ms)")
        else:
            le = s["lag_max_le_ms"]
            what = "no stall" + (f" (worst lag <= {le:g} ms)" if le is not None else "")
        gc = s["gc"]
        old = gc[2]
        print(f"    {name}: {what}; collector "
              + ", ".join(f"gen{g} {v['collections']}x {v['ms']:.0f} ms" for g, v in gc.items())
              + (f" (longest gen2 <= {old['max_le_ms']:g} ms)" if old["max_le_ms"] else ""))
        for step, label in (("mail_group_commit", "group commits"), ("mail_send", "SMTP sends")):
            if (t := s.get(step)) and t["count"]:
                print(f"      {name}'s delivery loop, {label}: {t['count']}, mean "
                      f"{t['ms'] / t['count']:.1f} ms, {t['over_100ms']} over 100 ms, longest "
                      f"<= {t['max_le_ms']:g} ms")


# ------------------------------------------------------------------------------------------
# PostgreSQL: what its processes waited on during the round

# Every process of the server that is doing something (a client backend inside a statement,
# or one of the server's own processes) and waits: on a lock, on I/O (WAL writes and
# flushes, new WAL segments), on a lightweight lock (WALWrite: commits queued behind one
# flush). Idle waits (a backend waiting for its client, a background process's main loop)
# are left out.
_WAITS = (
    "SELECT coalesce(datname, backend_type), wait_event_type || ':' || wait_event, count(*) "
    "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND wait_event IS NOT NULL "
    "AND wait_event_type NOT IN ('Activity', 'Client', 'Extension') "
    "AND (state = 'active' OR backend_type <> 'client backend') GROUP BY 1, 2")
WAIT_EVERY = 0.05  # seconds


class PgWaits:
    """Samples pg_stat_activity's wait events every `WAIT_EVERY` from a thread of its own
    (its own event loop and connection: the driver's loop also answers SMTP)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-waits", daemon=True)

    def start(self) -> PgWaits:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, dict[str, int]]]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.samples

    def _run(self) -> None:
        import asyncio

        import asyncpg

        async def sample() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=30)
            try:
                nxt = time.monotonic()
                while not self._stop.is_set():
                    rows = await conn.fetch(_WAITS)
                    self.samples.append((time.time(), {f"{r[0]} {r[1]}": r[2] for r in rows}))
                    nxt += WAIT_EVERY
                    await asyncio.sleep(max(nxt - time.monotonic(), 0.0))
            finally:
                await conn.close()

        try:
            asyncio.run(sample())
        except Exception as exc:  # a measurement, not the run: say so and go on
            print(f"  (pg wait sampler stopped: {exc})")


def analyse_waits(samples: list[tuple[float, dict[str, int]]], t0: float) -> dict[str, Any]:
    """Per wait (process kind and event): in how many samples it was seen, and its longest
    stretch of consecutive samples (about how long one such wait lasted, or waits followed
    each other), with when that stretch began."""
    seen: dict[str, int] = {}
    longest: dict[str, tuple[int, float]] = {}
    run: dict[str, tuple[int, float]] = {}
    for at, waits in samples:
        for key in waits:
            seen[key] = seen.get(key, 0) + 1
            n, since = run.get(key, (0, at))
            run[key] = (n + 1, since)
            if run[key][0] > longest.get(key, (0, 0.0))[0]:
                longest[key] = run[key]
        for key in list(run):
            if key not in waits:
                del run[key]
    top = sorted(seen, key=lambda k: -seen[k])
    return {"samples": len(samples), "every_s": WAIT_EVERY,
            "waits": [{"wait": k, "samples": seen[k], "longest_samples": longest[k][0],
                       "longest_from_s": longest[k][1] - t0} for k in top]}


def report_waits(waits: dict[str, Any], top: int = 6) -> None:
    if not waits or not waits["samples"]:
        return
    every = 1000 * waits["every_s"]
    items = waits["waits"][:top]
    print(f"  PostgreSQL's waits ({waits['samples']} samples of pg_stat_activity, every "
          f"{every:.0f} ms; seen in / longest stretch from): "
          + ("; ".join(f"{w['wait']} {w['samples']} / {w['longest_samples'] * every:.0f} ms "
                       f"from {w['longest_from_s']:.2f} s" for w in items) or "none"))


# ------------------------------------------------------------------------------------------
# the driver's own loop: it publishes on schedule and answers SMTP for notify

class DriverWatch:
    """The same heartbeat on the driver's loop, its stalls kept instead of logged: a stall
    here sends results late (counted against the backbone: the latency runs from the
    scheduled send) and holds every SMTP answer notify waits for."""

    def __init__(self, report_ms: int) -> None:
        from microcred_shared.stalls import LoopWatch

        self.t0 = 0.0
        self.stalls: list[dict[str, Any]] = []
        watch = self.watch = LoopWatch(report=report_ms / 1000)

        def keep(late: float, cpu: float, queued: float) -> None:
            gc_s, collections, oldest = watch._gc_since
            self.stalls.append({
                "late_ms": round(1000 * late), "at_s": time.time() - self.t0,
                "window_ms": round(1000 * (watch.interval + late)), "ran_ms": round(1000 * cpu),
                "queued_ms": round(1000 * queued), "gc_ms": round(1000 * gc_s),
                "gc_collections": collections, "gc_oldest": oldest})

        watch._say = keep  # type: ignore[method-assign]

    def start(self) -> None:
        self.watch.start()

    async def stop(self, t0: float) -> list[dict[str, Any]]:
        await self.watch.stop()
        for s in self.stalls:  # the round's t0 is known only once it has been sent
            s["at_s"] -= t0
        return self.stalls


def report_driver(stalls: list[dict[str, Any]], threshold_ms: int) -> None:
    if not stalls:
        print(f"  the driver's event loop: no stall >= {threshold_ms} ms")
        return
    worst = sorted(stalls, key=lambda x: -x["late_ms"])[:3]
    print(f"  the driver's event loop (publisher and SMTP sink): {len(stalls)} stalls >= "
          f"{threshold_ms} ms, {sum(s['late_ms'] for s in stalls)} ms in all; worst: "
          + "; ".join(f"{s['late_ms']} ms at {s['at_s']:.2f} s (ran {s['ran_ms']}, waited "
                      f"{s['queued_ms']} for a core, collector {s['gc_ms']} ms, generation "
                      f"{s['gc_oldest']})" for s in worst))
