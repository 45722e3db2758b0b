"""CoalescedCommits without a broker: what it sends, when, and what it keeps after a failed
commit (the real broker's side is tests/e2e/test_offset_commits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord

from microcred_shared.offsets import CoalescedCommits

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def rec(tp: TopicPartition, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic=tp.topic, partition=tp.partition, offset=offset,
                          timestamp=0, timestamp_type=0, key=None, value=b"",
                          checksum=None, serialized_key_size=0, serialized_value_size=0,
                          headers=())


class FakeConsumer:
    def __init__(self, held: set[TopicPartition]) -> None:
        self.held = held
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            self.fail -= 1
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))


def committer(interval: float, held: set[TopicPartition]) -> tuple[CoalescedCommits, Any]:
    commits = CoalescedCommits("t", interval)
    consumer = FakeConsumer(held)
    commits.attach(consumer)
    return commits, consumer


async def test_batches_within_the_interval_go_in_one_commit_of_their_highest_offsets() -> None:
    commits, consumer = committer(0.05, {A, B})
    commits.done([rec(A, 0), rec(A, 1)])
    commits.done([rec(B, 7)])
    commits.done([rec(A, 2), rec(B, 8)])
    assert consumer.commits == []  # nothing before the interval
    await asyncio.sleep(0.15)
    assert consumer.commits == [{A: 3, B: 9}]
    commits.done([rec(A, 3)])
    await asyncio.sleep(0.15)
    assert consumer.commits == [{A: 3, B: 9}, {A: 4}]


async def test_a_partition_the_consumer_no_longer_holds_is_not_committed() -> None:
    commits, consumer = committer(60, {A, B})
    commits.done([rec(A, 4), rec(B, 2)])
    consumer.held = {A}
    await commits.flush()
    assert consumer.commits == [{A: 5}]
    assert commits.pending == {}


async def test_a_failed_commit_is_kept_and_sent_with_what_came_since() -> None:
    commits, consumer = committer(0.05, {A, B})
    consumer.fail = 1
    commits.done([rec(A, 1)])
    await asyncio.sleep(0.08)
    assert consumer.commits == [] and commits.pending == {A: 2}
    commits.done([rec(B, 0)])
    await asyncio.sleep(0.15)
    assert consumer.commits == [{A: 2, B: 1}]


async def test_close_flushes_and_nothing_is_sent_after_it() -> None:
    commits, consumer = committer(60, {A})
    commits.done([rec(A, 9)])
    await commits.close()
    assert consumer.commits == [{A: 10}]
    commits.done([rec(A, 10)])
    await asyncio.sleep(0.05)
    assert consumer.commits == [{A: 10}]


async def test_a_revocation_flushes_what_is_pending() -> None:
    commits, consumer = committer(60, {A, B})
    commits.done([rec(A, 0), rec(B, 5)])
    await commits.on_partitions_revoked({A, B})
    assert consumer.commits == [{A: 1, B: 6}]
