"""Where the slowest 1 % of a latency round come from (issue 12, item 3): clustered in time
(a stall: a collector, autovacuum, a checkpoint, a compaction of commits, a JIT burst) or
spread over the round (queueing on a busy machine).

Used by run.py after each latency round, and alone on a kept summary:

    uv run --frozen python bench/e2e/tail.py bench/e2e/out/<ts>/summary.json

Input: each result's timestamps (submitted, decided, issued, registered, stored by notify's
consumer, mailed) and, with run.py's `--timeline`, the CPU of every measured process (and
of PostgreSQL's own processes by kind: backends by database, autovacuum, checkpointer, WAL
writer) and of the whole machine, sampled every 100 ms during the round.

Printed:
- the round second by second (by send time): results, p50 and max submitted -> mailed, and
  how many of the slowest 1 % were sent in it;
- how clustered the slowest 1 % are: how many 100 ms send bins hold them, and what share
  the three fullest bins hold; a stall puts most of them in a few adjacent bins, queueing
  on a saturated machine spreads them;
- which hop makes them slow: each hop's median among the slowest 1 % against all results;
- with a timeline, what ran while they were in flight: each process's CPU (in cores) over
  the slowest results' windows against the round's average, and the machine's.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

BIN = 0.1  # seconds
STEPS = ("submitted", "decided", "issued", "registered", "stored", "mailed")
HOPS = ("decided", "issued", "registered", "stored", "mailed")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def _pg_kind(p: psutil.Process) -> str:
    """A PostgreSQL process by what it does: a backend by its database, the server's own
    processes by their title (autovacuum worker, checkpointer, walwriter, ...)."""
    try:
        words = " ".join(p.cmdline()).split()
    except psutil.Error:
        return "pg other"
    if len(words) >= 4 and words[0] == "postgres:" and "(" in words[3]:
        return f"pg {words[2].removeprefix('microcred_')}"
    if len(words) >= 2 and words[0] == "postgres:":
        return "pg " + " ".join(w for w in words[1:3] if not w.startswith("microcred"))
    return "pg postmaster"


class Timeline:
    """CPU seconds by process group every `BIN`, in a thread of the driver (its own cost is
    the driver's, counted there: about 1-3 % of a core)."""

    def __init__(self, groups: dict[str, list[int]], children: set[str]) -> None:
        self.groups, self.children = groups, children
        self.samples: list[tuple[float, dict[str, float], float]] = []
        self._kinds: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)

    def _sample(self) -> tuple[float, dict[str, float], float]:
        out: dict[str, float] = {}
        for name, pids in self.groups.items():
            for pid in pids:
                try:
                    p = psutil.Process(pid)
                    procs = [p] + (p.children() if name in self.children else [])
                except psutil.Error:
                    continue
                for q in procs:
                    try:
                        c = q.cpu_times()
                    except psutil.Error:
                        continue
                    label = name
                    if q.pid != pid:
                        label = self._kinds.get(q.pid) or self._kinds.setdefault(
                            q.pid, _pg_kind(q))
                    # keyed by pid too: a process that ends must not look like negative CPU
                    out[f"{label}\t{q.pid}"] = c.user + c.system
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq + t.steal
        return time.time(), out, busy

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self._sample())
            nxt += BIN
            self._stop.wait(max(nxt - time.monotonic(), 0.0))

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Per interval: its start (epoch s), length, CPU seconds by group, machine busy."""
        self._stop.set()
        self._thread.join(5)
        out = []
        for (t0, a, b0), (t1, b, b1) in zip(self.samples, self.samples[1:], strict=False):
            cpu: dict[str, float] = {}
            for k, v in b.items():
                label = k.split("\t", 1)[0]
                cpu[label] = cpu.get(label, 0.0) + max(v - a.get(k, v), 0.0)
            out.append({"t": t0, "dt": t1 - t0, "cpu": {k: round(v, 4) for k, v in cpu.items()},
                        "machine": round(b1 - b0, 4)})
        return out


def per_result(submit: dict[str, float], stages: dict[str, dict[str, float]],
               mailed: dict[str, float]) -> dict[str, list[float | None]]:
    """key -> [submitted, decided, issued, registered, stored, mailed, delivered_at] (epoch
    s; the last is notify's record of the mail, shared by the mails of one group commit)."""
    cols = [submit, stages.get("decided", {}), stages.get("issued", {}),
            stages.get("registered", {}), stages.get("notify_created", {}), mailed,
            stages.get("delivered", {})]
    return {k: [c.get(k) for c in cols] for k in submit}


def analyse(rows: dict[str, list[float | None]], timeline: list[dict[str, Any]] | None,
            cores: int = os.cpu_count() or 1, out: Any = sys.stdout) -> dict[str, Any]:
    done = [r for r in rows.values() if all(x is not None for x in r[:6])]
    if len(done) < 100:
        print(f"  tail: {len(done)} complete results, too few to say", file=out)
        return {}
    t0 = min(r[0] for r in done)
    lat = [r[5] - r[0] for r in done]
    p99 = _pct(lat, 99)
    slow = [r for r in done if r[5] - r[0] >= p99]
    bins: dict[int, list[list[float]]] = {}
    for r in done:
        bins.setdefault(int((r[0] - t0) / BIN), []).append(r)
    slow_bins: dict[int, int] = {}
    for r in slow:
        b = int((r[0] - t0) / BIN)
        slow_bins[b] = slow_bins.get(b, 0) + 1
    top3 = sum(sorted(slow_bins.values(), reverse=True)[:3])
    span = (max(slow_bins) - min(slow_bins) + 1) * BIN
    print(f"\n  TAIL: the slowest 1 % ({len(slow)} results, >= {1000 * p99:.0f} ms) were sent in "
          f"{len(slow_bins)} of {len(bins)} 100-ms bins over {span:.1f} s; the 3 fullest "
          f"bins hold {top3} ({100 * top3 / len(slow):.0f} %)", file=out)
    print("    by send second: results, p50 / max submitted -> mailed, slowest-1 % sent", file=out)
    seconds: dict[int, list[list[float]]] = {}
    for r in done:
        seconds.setdefault(int(r[0] - t0), []).append(r)
    by_second = []
    for s in sorted(seconds):
        ls = [r[5] - r[0] for r in seconds[s]]
        n_slow = sum(v for b, v in slow_bins.items() if int(b * BIN + 1e-9) == s)
        by_second.append({"s": s, "n": len(ls), "p50": _pct(ls, 50), "max": max(ls),
                          "slow": n_slow})
    print("     " + "  ".join(f"{d['s']:>2}s {d['n']:>4} {1000 * d['p50']:4.0f}/"
                              f"{1000 * d['max']:4.0f} {d['slow']:>2}" for d in by_second[:5]),
          file=out)
    for i in range(5, len(by_second), 5):
        print("     " + "  ".join(f"{d['s']:>2}s {d['n']:>4} {1000 * d['p50']:4.0f}/"
                                  f"{1000 * d['max']:4.0f} {d['slow']:>2}"
                                  for d in by_second[i:i + 5]), file=out)
    hops: dict[str, dict[str, float]] = {}
    for i, name in enumerate(HOPS, 1):
        all_ = statistics.median(r[i] - r[i - 1] for r in done)
        sl = statistics.median(r[i] - r[i - 1] for r in slow)
        hops[name] = {"all_p50": all_, "slow_p50": sl}
    print("    hop medians, all -> slowest 1 %: " + ", ".join(
        f"{k} {1000 * v['all_p50']:.0f} -> {1000 * v['slow_p50']:.0f} ms"
        for k, v in hops.items()), file=out)
    # When, in the round's clock, each hop of the slowest results ended: a stall shows as
    # one hop's ends bunched at one moment.
    ends = {}
    for i, name in enumerate(HOPS, 1):
        xs = sorted(r[i] - t0 for r in slow)
        ends[name] = (xs[0], _pct(xs, 50), xs[-1])
    print("    slowest 1 %, when each step ended (s into the round: first / median / last): "
          + ", ".join(f"{k} {a:.2f}/{m:.2f}/{z:.2f}" for k, (a, m, z) in ends.items()),
          file=out)
    # notify's delivery loop records the mails of its senders in group commits: how many
    # mails a group held and how long apart the groups were bounds what the loop can mail
    groups = collections.Counter(r[6] for r in done if len(r) > 6 and r[6] is not None)
    if groups:
        sizes = list(groups.values())
        times = sorted(groups)
        apart = [b - a for a, b in zip(times, times[1:], strict=False)]
        print(f"    notify's group commits: {len(sizes)} for {sum(sizes)} mails, "
              f"{statistics.mean(sizes):.1f} mails each (p50 {_pct(sizes, 50)}, max "
              f"{max(sizes)}), {1000 * statistics.median(apart):.1f} ms apart (p50; p99 "
              f"{1000 * _pct(apart, 99):.0f} ms)", file=out)
    res: dict[str, Any] = {"p99": p99, "slow": len(slow), "slow_bins": len(slow_bins),
                           "bins": len(bins), "top3_share": top3 / len(slow),
                           "span_s": span, "by_second": by_second, "hops": hops,
                           "slow_ends": ends}
    if timeline:
        res["during_slow"] = _during(slow, timeline, cores, out)
    return res


def _during(slow: list[list[float]], timeline: list[dict[str, Any]], cores: int,
            out: Any) -> dict[str, Any]:
    """Each group's CPU (cores) over the intervals when any slowest-1 % result was in flight
    (sent, not yet mailed), against the whole round's average."""
    lo, hi = min(r[0] for r in slow), max(r[5] for r in slow)
    rnd = timeline  # the round: from its first send until all was mailed
    inside = [iv for iv in timeline
              if any(r[0] <= iv["t"] + iv["dt"] and iv["t"] <= r[5] for r in slow)]
    if not rnd or not inside:
        return {}

    def rate(ivs: list[dict[str, Any]]) -> tuple[dict[str, float], float]:
        wall = sum(iv["dt"] for iv in ivs)
        acc: dict[str, float] = {}
        for iv in ivs:
            for k, v in iv["cpu"].items():
                acc[k] = acc.get(k, 0.0) + v
        return {k: v / wall for k, v in acc.items()}, sum(iv["machine"] for iv in ivs) / wall

    whole, m_whole = rate(rnd)
    during, m_during = rate(inside)
    ours_w, ours_d = sum(whole.values()), sum(during.values())
    keys = sorted(set(whole) | set(during), key=lambda k: -(during.get(k, 0) - whole.get(k, 0)))
    print(f"    while they were in flight ({lo - rnd[0]['t']:.2f}-{hi - rnd[0]['t']:.2f} s, "
          f"{len(inside)} of {len(rnd)} samples): machine {m_during:.2f} of {cores} cores "
          f"(round {m_whole:.2f}), ours {ours_d:.2f} (round {ours_w:.2f}); by process, "
          "cores during (round):", file=out)
    print("      " + ", ".join(f"{k} {during.get(k, 0):.2f} ({whole.get(k, 0):.2f})"
                               for k in keys if max(during.get(k, 0), whole.get(k, 0)) >= 0.01),
          file=out)
    # the busiest 100-ms samples of the machine while they were in flight, by what ran
    peaks = sorted((iv for iv in inside if iv["dt"] >= BIN / 2),  # not a late sampler's sliver
                   key=lambda iv: -iv["machine"] / iv["dt"])[:3]
    for iv in peaks:
        top = sorted(iv["cpu"].items(), key=lambda kv: -kv[1])[:4]
        print(f"      busiest sample at {iv['t'] - rnd[0]['t']:.2f} s: machine "
              f"{iv['machine'] / iv['dt']:.2f} cores; " + ", ".join(
                  f"{k} {v / iv['dt']:.2f}" for k, v in top), file=out)
    return {"machine_during": m_during, "machine_round": m_whole, "during": during,
            "round": whole}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    summary = json.loads(Path(sys.argv[1]).read_text())
    for lat in summary.get("latency_rounds", []):
        rows = lat.get("per_result")
        if not rows:
            print(f"round {lat['round']}: no per-result timings kept")
            continue
        print(f"round {lat['round']}: p99 {1000 * lat['latency']['p99']:.0f} ms")
        analyse(rows, lat.get("timeline"), summary.get("machine", {}).get("affinity", 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
