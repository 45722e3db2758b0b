"""The benchmark's reading of the services' stall lines (bench/e2e/stalls.py) must match
what a service writes (microcred_shared.stalls): if the two drift apart, every round would
print "no stall" whatever happened."""

from __future__ import annotations

import logging

import pytest

from microcred_shared.stalls import LoopWatch


def test_the_benchmark_reads_the_line_a_service_writes(
        caplog: pytest.LogCaptureFixture, bench_e2e) -> None:  # type: ignore[no-untyped-def]
    stalls = bench_e2e("stalls")
    watch = LoopWatch(interval=0.01, report=0.05)
    with caplog.at_level(logging.WARNING, logger="microcred.stalls"):
        watch._gc_since = [0.12, 3, 2]
        watch._say(0.2, 0.19, 0.01)
    line = caplog.records[-1].getMessage()
    m = stalls.STALL.search(f"2026-12-07 15:00:00,000 WARNING microcred.stalls {line}")
    assert m is not None, line
    assert (m["late"], m["window"], m["ran"], m["queued"], m["gc"], m["n"], m["gen"]) == (
        "200", "210", "190", "10", "120", "3", "2")
