"""The e2e benchmark's tail analysis (bench/e2e/tail.py) must tell a stall from queueing and
name the hop that held the slowest results; if it misread synthetic rounds whose answer is
known, its verdict on a real round would mislead the next session."""

from __future__ import annotations

import io
import random


def _round(extra_mail_hop) -> dict[str, list[float | None]]:
    """5,000 results at 500/s, each hop 10-30 ms, plus `extra_mail_hop(sent_at)` on the
    mail hop; the mails of 16 share a group commit."""
    rng = random.Random(7)
    rows: dict[str, list[float | None]] = {}
    for i in range(5000):
        t = 1000.0 + i / 500
        r = [t]
        for hop in range(5):
            r.append(r[-1] + rng.uniform(0.01, 0.03) + (extra_mail_hop(t - 1000.0)
                                                       if hop == 4 else 0.0))
        r.append(round(r[5], 2))  # delivered_at: one group per 10 ms
        rows[f"k{i}"] = r
    return rows


def test_a_stall_is_reported_as_clustered_in_time_and_in_the_mail_hop(bench_e2e) -> None:
    tail = bench_e2e("tail")
    rows = _round(lambda t: 0.4 if 6.0 <= t < 6.12 else 0.0)  # 60 results held 400 ms
    out = io.StringIO()
    res = tail.analyse(rows, None, out=out)
    assert res["slow"] == 51  # the results at or above p99
    assert res["slow_bins"] <= 2 and res["top3_share"] == 1.0 and res["span_s"] <= 0.2
    assert res["hops"]["mailed"]["slow_p50"] > 0.4 > res["hops"]["mailed"]["all_p50"]
    assert res["hops"]["issued"]["slow_p50"] < 0.05
    assert "slowest 1 % (51 results" in out.getvalue()


def test_queueing_spread_over_the_round_is_reported_as_spread(bench_e2e) -> None:
    tail = bench_e2e("tail")
    rng = random.Random(3)
    rows = _round(lambda t: rng.expovariate(1 / 0.05))  # every result may queue
    res = tail.analyse(rows, None, out=io.StringIO())
    assert res["slow_bins"] >= 20 and res["top3_share"] < 0.3


def test_the_timeline_says_which_process_ran_while_the_slowest_were_in_flight(bench_e2e) -> None:
    tail = bench_e2e("tail")
    rows = _round(lambda t: 0.4 if 6.0 <= t < 6.12 else 0.0)
    timeline = []
    for k in range(120):  # 100 ms samples over the round, a busy "pg checkpointer" at 6-7 s
        t = 1000.0 + k / 10
        busy = 6.0 <= k / 10 < 7.0
        timeline.append({"t": t, "dt": 0.1, "machine": 0.19 if busy else 0.1,
                         "cpu": {"notify": 0.02, "pg checkpointer": 0.09 if busy else 0.0}})
    res = tail.analyse(rows, timeline, cores=2, out=io.StringIO())
    during = res["during_slow"]
    assert during["during"]["pg checkpointer"] > 0.5 > during["round"]["pg checkpointer"]
    assert during["machine_during"] > during["machine_round"]
