"""HTTP ingest's group commit (issue 12, item 2): the single requests that arrive while a
flush is in flight go together in the next one, instead of each starting a flush of its
own while a slot is free; a batch that arrives meanwhile starts its flush at once. The
database is replaced by a write that takes 50 ms, as a statement's round trip does."""

from __future__ import annotations

import asyncio
from typing import Any

from microcred_assessment.results import ingest
from microcred_assessment.results.ingest import EAGER_ROWS, IngestStore, Stored
from microcred_testkit.backbone import learner, result


class SlowDatabase(IngestStore):
    def __init__(self) -> None:
        super().__init__(None, lambda: None)  # type: ignore[arg-type]
        self.flushed: list[int] = []  # results per flush, as each starts

    async def _write(self, items: list[ingest.Item]) -> list[Stored]:
        self.flushed.append(len(items))
        await asyncio.sleep(0.05)
        return [Stored("accepted", i.event_id) for i in items]


def items(n: int, tag: str) -> list[ingest.Item]:
    return [ingest.item(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                               score=80, who=learner(f"{tag}-{i}")), "lakeshore-college",
                        traceparent=None) for i in range(n)]


async def test_single_requests_arriving_during_a_flush_share_the_next_one() -> None:
    store = SlowDatabase()
    answers: list[Any] = [asyncio.ensure_future(store.store(items(1, "first")))]
    await asyncio.sleep(0.005)  # the first flush is in flight
    for i in range(20):  # one request every millisecond or so
        answers.append(asyncio.ensure_future(store.store(items(1, f"r{i}"))))
        await asyncio.sleep(0.001)
    done = await asyncio.gather(*answers)
    assert [len(d) for d in done] == [1] * 21
    assert all(d[0].outcome == "accepted" for d in done)
    assert store.flushed == [1, 20]  # not a flush of its own for each while a slot was free
    await store.stop()


async def test_a_batch_does_not_wait_for_the_flush_in_flight() -> None:
    store = SlowDatabase()
    first = asyncio.ensure_future(store.store(items(1, "first")))
    await asyncio.sleep(0.005)
    batch = asyncio.ensure_future(store.store(items(EAGER_ROWS, "batch")))
    await asyncio.sleep(0.01)
    assert store.flushed == [1, EAGER_ROWS]  # both in flight at once
    assert len(await batch) == EAGER_ROWS and len(await first) == 1
    await store.stop()
