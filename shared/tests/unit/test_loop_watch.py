"""A service says when its event loop was held up and what the garbage collector took
(microcred_shared.stalls): an operator reads it at GET /metrics, and the end-to-end
benchmark reads the stall lines of each latency round (bench/e2e/stalls.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from microcred_shared.stalls import LoopWatch


def _scraped(watch: LoopWatch) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()

    class Source:
        def collect(self):  # type: ignore[no-untyped-def]
            return watch.metrics()

    registry.register(Source())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_loop_held_by_a_blocking_call_is_logged_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch(interval=0.01, report=0.3)
    watch.start()
    try:
        await asyncio.sleep(0.05)  # a few beats
        with caplog.at_level(logging.WARNING, logger="microcred.stalls"):
            time.sleep(0.8)  # noqa: ASYNC251 - a blocking call holding the loop
            await asyncio.sleep(0.05)
    finally:
        await watch.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "microcred.stalls"]
    # At least the held beat (a starved test machine may add others of its own).
    assert lines and all(line.startswith("event loop stalled: woke ") for line in lines)
    assert watch.stalls == len(lines)
    scraped = _scraped(watch)
    beats = scraped[("microcred_event_loop_lag_seconds_count", ())]
    within_half_a_second = scraped[("microcred_event_loop_lag_seconds_bucket", (("le", "0.5"),))]
    assert beats >= 2
    assert within_half_a_second <= beats - 1  # the held beat woke over 500 ms late


async def test_collections_are_counted_by_generation_while_watched() -> None:
    watch = LoopWatch(interval=0.01, report=0)
    watch.start()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        await watch.stop()
    gc.collect()  # no longer watched
    scraped = _scraped(watch)
    assert scraped[("microcred_gc_pause_seconds_count", (("generation", "2"),))] == 1
    assert scraped[("microcred_gc_pause_seconds_count", (("generation", "0"),))] >= 1
    assert scraped[("microcred_gc_pause_seconds_sum", (("generation", "2"),))] > 0
    assert watch._on_gc not in gc.callbacks
