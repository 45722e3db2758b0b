"""A subscription's linger (MICROCRED_CONSUMER_LINGER_MS): while records keep coming, a
short batch waits for the records behind it and takes them too; a record after a quiet
spell, or any record with the linger off (the default), is handed over at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka.structs import ConsumerRecord, TopicPartition

from microcred_shared.runtime import FLOWING_S, wait_for_records
from microcred_shared.settings import ServiceSettings


def record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord("t", partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


class Consumer:
    """aiokafka's getmany over records that arrive at given times (loop clock offsets)."""

    def __init__(self, arrivals: list[tuple[float, ConsumerRecord]]) -> None:
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.arrivals = arrivals
        self.calls: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int):
        self.calls.append(timeout_ms)
        deadline = self.loop.time() + timeout_ms / 1000
        while True:
            now = self.loop.time() - self.start
            ready = [r for t, r in self.arrivals if t <= now][:max_records]
            if ready or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.001)
        self.arrivals = [(t, r) for t, r in self.arrivals if r not in ready]
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        for r in ready:
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out


def subscriber(linger_ms: int, max_records: int = 100) -> SimpleNamespace:
    sub = SimpleNamespace(max_records=max_records)
    wait_for_records(sub, 1000, linger_ms=linger_ms)
    return sub


async def test_while_records_keep_coming_a_short_batch_takes_those_right_behind_it():
    a, b, c, d = record(0, 0), record(0, 1), record(1, 0), record(0, 2)
    consumer = Consumer([(0.0, a), (0.03, b), (0.045, c), (0.3, d)])
    sub = subscriber(linger_ms=40)
    assert await sub.get_msg(consumer) == (a,)  # the first of a stream: no wait
    # The next record comes soon after: the batch waits 40 ms and takes what came meanwhile.
    assert await sub.get_msg(consumer) == (b, c)
    # Records that came long after the last batch (quiet spell): no wait.
    assert await sub.get_msg(consumer) == (d,)


async def test_without_a_linger_each_batch_is_what_is_there():
    a, b = record(0, 0), record(0, 1)
    consumer = Consumer([(0.0, a), (0.03, b)])
    sub = subscriber(linger_ms=0)
    assert await sub.get_msg(consumer) == (a,)
    assert await sub.get_msg(consumer) == (b,)
    assert consumer.calls == [1000, 1000]  # never a second look


async def test_a_full_batch_does_not_wait():
    first = [record(0, i) for i in range(3)]
    second = [record(0, i) for i in range(3, 6)]
    consumer = Consumer([(0.0, r) for r in first] + [(0.01, r) for r in second])
    sub = subscriber(linger_ms=500, max_records=3)
    loop = asyncio.get_running_loop()
    assert await sub.get_msg(consumer) == tuple(first)
    started = loop.time()
    assert await sub.get_msg(consumer) == tuple(second)
    assert loop.time() - started < 0.25  # well under the 500 ms linger
    assert FLOWING_S < 0.5


def test_the_linger_is_off_unless_set(monkeypatch):
    monkeypatch.delenv("MICROCRED_CONSUMER_LINGER_MS", raising=False)
    assert ServiceSettings().consumer_linger_ms == 0
    monkeypatch.setenv("MICROCRED_CONSUMER_LINGER_MS", "15")
    assert ServiceSettings().consumer_linger_ms == 15
