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


async def test_a_loop_held_by_a_long_step_is_logged_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch(interval=0.01, report=0.1)
    watch.start()
    try:
        await asyncio.sleep(0.05)  # a few beats on time
        with caplog.at_level(logging.WARNING, logger="microcred.stalls"):
            time.sleep(0.4)  # noqa: ASYNC251 - a synchronous step holding the loop
            await asyncio.sleep(0.05)
    finally:
        await watch.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "microcred.stalls"]
    assert len(lines) == 1, lines
    assert lines[0].startswith("event loop stalled: woke ")
    assert watch.stalls == 1
    scraped = _scraped(watch)
    beats = scraped[("microcred_event_loop_lag_seconds_count", ())]
    on_time = scraped[("microcred_event_loop_lag_seconds_bucket", (("le", "0.25"),))]
    assert beats >= 3
    assert on_time == beats - 1  # the one beat of the held loop was over 250 ms late


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
