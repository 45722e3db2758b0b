"""HTTP ingest's group commit (`results.ingest.IngestStore`) without a database: when a
request's statement leaves, which requests share it, how many are in flight, and that
every request gets its own outcome or its flush's error (issue 12, item 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from microcred_assessment.results import ingest
from microcred_assessment.results.ingest import IngestStore, Stored


class _Item:
    def __init__(self, n: int) -> None:
        self.event_id = f"e-{n}"


class _Store(IngestStore):
    """The statement replaced: records each flush's items and waits for `release`."""

    def __init__(self, *, hold: bool = False, fail: Exception | None = None) -> None:
        self.commits = 0
        super().__init__(None, self._committed)  # type: ignore[arg-type]  # no engine used
        self.written: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    def _committed(self) -> None:
        self.commits += 1

    async def _write(self, items: list[Any]) -> list[Stored]:
        self.written.append([i.event_id for i in items])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        if self.fail is not None:
            raise self.fail
        return [Stored("accepted", i.event_id) for i in items]


def _store(store: IngestStore, *ns: int) -> asyncio.Future[list[Stored]]:
    return asyncio.ensure_future(store.store([_Item(n) for n in ns]))  # type: ignore[misc]


async def test_the_statement_leaves_on_the_next_turn_with_every_request_of_this_one() -> None:
    """Requests that arrive in one turn of the event loop share a flush, whose statement is
    sent on the next turn (it used to take two more: a flusher task woken by an event, then
    the flush started as a task of its own, each a turn of a busy loop)."""
    store = _Store()
    a, b = _store(store, 1), _store(store, 2, 3)
    await asyncio.sleep(0)  # a and b run: each queues its request
    assert store.written == []
    await asyncio.sleep(0)  # the flush's first step: the statement is sent
    assert store.written == [["e-1", "e-2", "e-3"]]
    assert [s.event_id for s in await a] == ["e-1"]
    assert [s.event_id for s in await b] == ["e-2", "e-3"]
    assert (store.flushes, store.stored, store.commits) == (1, 3, 1)


async def test_at_most_flushes_in_flight_and_the_waiting_ones_share_the_next() -> None:
    store = _Store(hold=True)
    first = [_store(store, n) for n in range(ingest.FLUSHES)]
    for _ in range(ingest.FLUSHES + 2):  # each flush takes what queued before it ran
        await asyncio.sleep(0)
        first.append(_store(store, 100 + len(first)))
    waiting = [_store(store, n) for n in range(200, 205)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert store.in_flight == ingest.FLUSHES == store.most_in_flight
    sent = sum(len(w) for w in store.written)
    store.release.set()
    answers = await asyncio.gather(*first, *waiting)
    assert store.most_in_flight == ingest.FLUSHES
    # Everything that waited for a free slot went in as few flushes as could start.
    assert len(store.written) <= ingest.FLUSHES + ingest.FLUSHES
    assert sum(len(w) for w in store.written) == len(answers) > sent
    assert [a[0].event_id for a in answers[-5:]] == [f"e-{n}" for n in range(200, 205)]


async def test_more_than_max_rows_waiting_start_the_next_flush_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_ROWS", 3)
    store = _Store(hold=True)
    futures = [_store(store, n) for n in range(7)]
    for _ in range(4):
        await asyncio.sleep(0)
    assert store.written == [["e-0", "e-1", "e-2"], ["e-3", "e-4", "e-5"], ["e-6"]]
    store.release.set()
    assert [f[0].event_id for f in await asyncio.gather(*futures)] == \
        [f"e-{n}" for n in range(7)]


async def test_a_failed_flush_fails_its_requests_only_and_the_next_one_runs() -> None:
    store = _Store(fail=ConnectionError("the database went away"))
    a, b = _store(store, 1), _store(store, 2)
    results = await asyncio.gather(a, b, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert store.commits == 0 and store.stored == 0
    store.fail = None
    assert [s.outcome for s in await _store(store, 3)] == ["accepted"]
    assert store.commits == 1


async def test_stopping_answers_the_flushes_in_flight_and_refuses_the_rest() -> None:
    store = _Store(hold=True)
    flying = [_store(store, n) for n in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(store.stop())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="stopping"):
        await store.store([_Item(9)])  # type: ignore[list-item]
    store.release.set()
    await stopping
    assert [f[0].outcome for f in await asyncio.gather(*flying)] == ["accepted"] * 3
