"""What holds up a service's event loop (issue 12, item 3): how late a heartbeat of its own
wakes, and the cyclic garbage collector's pauses.

One process runs a service's consumers, its outbox relay, its HTTP API and (notify) its
delivery loop on one event loop: anything that keeps that loop from running - a long
synchronous step, a collection of the oldest generation over a heap grown by a burst, or
the process not getting a core - delays every one of them at once, and shows as a tail in
the latency of whatever was in flight. The heartbeat sleeps `interval` seconds and measures
how much later than that it woke; the CPU the loop's thread used meanwhile, and how long it waited
runnable for a core (Linux's scheduler statistics), tell a busy loop (the thread ran: work
in the loop) from a starved one (it waited for a core: CPU queueing on the machine) and
from a blocked one (neither: a blocking call).

Exported at `GET /metrics` (histograms of the lag and of the collector's pauses by
generation) and, for a stall of `report` seconds or more, one log line with its time, what
the thread did and what the collector took; the end-to-end benchmark reads those lines per
latency round.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import HistogramMetricFamily, Metric

log = logging.getLogger("microcred.stalls")

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
GC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Timings:
    """A histogram kept by the hot path (a bisection and two additions per observation)
    and turned into a metric family only at scrape time."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value
        self.total += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        out = HistogramMetricFamily(name, documentation)
        out.add_metric([], self.cumulative(), self.total)
        return out

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


def _queued() -> float:
    """Seconds the calling thread has spent runnable but waiting for a core (Linux's
    scheduler statistics); 0 where they cannot be read."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class LoopWatch:
    """A heartbeat on the running loop and a `gc.callbacks` hook; `start()` in the loop."""

    def __init__(self, interval: float = 0.05, report: float = 0.1) -> None:
        self.interval = interval
        self.report = report  # seconds of lateness worth a log line; 0: none
        self.lag = Timings(LAG_BUCKETS)
        self.gc = {g: Timings(GC_BUCKETS) for g in (0, 1, 2)}
        self.stalls = 0  # heartbeats at least `report` late
        # collector pauses since the last heartbeat: seconds, collections, oldest generation
        self._gc_since = [0.0, 0, -1]
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        generation = int(info.get("generation", 0))
        self.gc[min(max(generation, 0), 2)].observe(pause)
        since = self._gc_since
        since[0] += pause
        since[1] += 1
        since[2] = max(since[2], generation)

    def start(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="loop-watch")

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            cpu, queued = time.thread_time(), _queued()
            self._gc_since = [0.0, 0, -1]
            await asyncio.sleep(self.interval)
            late = max(loop.time() - due, 0.0)
            self.lag.observe(late)
            if self.report and late >= self.report:
                self.stalls += 1
                self._say(late, time.thread_time() - cpu, _queued() - queued)

    def _say(self, late: float, cpu: float, queued: float) -> None:
        gc_s, collections, oldest = self._gc_since
        window = self.interval + late
        # Formatted here, not by the logging call: each stall is its own line (the log's
        # repeat filter holds back lines of one template), and stalls this long are rare.
        log.warning(
            f"event loop stalled: woke {1000 * late:.0f} ms late at {time.time():.3f} "
            f"(over {1000 * window:.0f} ms its thread ran {1000 * cpu:.0f} ms and waited "
            f"{1000 * queued:.0f} ms for a core; garbage collector {1000 * gc_s:.0f} ms in "
            f"{collections} collections, oldest generation {oldest})")

    def metrics(self) -> Iterable[Metric]:
        lag = HistogramMetricFamily(
            "microcred_event_loop_lag_seconds",
            "How late the event loop's heartbeat woke (the loop busy or the process starved)")
        lag.add_metric([], self.lag.cumulative(), self.lag.total)
        pauses = HistogramMetricFamily(
            "microcred_gc_pause_seconds", "Cyclic garbage collector pauses by generation",
            labels=["generation"])
        for generation, hist in self.gc.items():
            pauses.add_metric([str(generation)], hist.cumulative(), hist.total)
        yield from (lag, pauses)
