"""Offset commits, coalesced (ADR 2): a batch's offsets are recorded once its database
transaction has committed, and sent to the broker at most once per `interval` seconds per
subscription, not once per batch.

What is committed is always an explicit offset: one past the last record of a batch whose
transaction committed, per partition - never the consumer's position, which runs ahead of
the work by whatever has been fetched or handed out and not yet made durable. The
pending offsets are sent at once when the group takes partitions away (a rebalance) and
when the consumer stops (a graceful shutdown), so neither redelivers work that was done.
A crash (SIGKILL, a lost machine) loses at most `interval` seconds of commits: those
records are delivered again and the inbox turns them into no-ops (at least once,
exactly-once effect, as before). A commit that fails goes back to the pending offsets
(the next flush, or the revocation's, sends it with whatever came since); a partition that
went elsewhere is then dropped, and read again from its last commit by its new owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)

# One OffsetCommit request per busy subscription per second at most, instead of one per
# batch (at 200 results/s in chunks of 5, ~100 a second across the services: issue 12).
# A crash redelivers up to this much work, which the inbox turns into no-ops.
COMMIT_INTERVAL = 1.0
# The last commit of a stopping consumer waits no longer than this.
CLOSE_TIMEOUT = 10.0


class CoalescedCommits(ConsumerRebalanceListener):
    """The offsets of one subscription's durable batches, committed together.

    `consumer` is the subscription's aiokafka consumer, set when it is built (a restarted
    subscription gets a new one). As the subscription's rebalance listener, it flushes
    before partitions are revoked."""

    def __init__(self, name: str, interval: float = COMMIT_INTERVAL) -> None:
        self.name = name
        self.interval = interval
        self.consumer: Any = None  # aiokafka's AIOKafkaConsumer (untyped)
        self._pending: dict[TopicPartition, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.requests = 0  # OffsetCommit requests sent (tests, metrics)
        self.failed = 0
        self._closed = False

    def attach(self, consumer: Any) -> None:
        """The subscription's (new) consumer, started: commits go through it."""
        self.consumer = consumer
        self._closed = False

    @property
    def pending(self) -> dict[TopicPartition, int]:
        return dict(self._pending)

    def done(self, records: Iterable[ConsumerRecord]) -> None:
        """The records' transaction has committed: their offsets may be committed."""
        pending = self._pending
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            nxt = record.offset + 1
            if nxt > pending.get(tp, -1):
                pending[tp] = nxt
        if pending and self._timer is None and not self._closed:
            if self.interval <= 0:
                self._start_flush()
            else:
                self._timer = asyncio.get_running_loop().call_later(
                    self.interval, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        if self._closed:
            return
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self.flush())
        else:  # one is on its way: what came since goes with the next
            self._timer = asyncio.get_running_loop().call_later(
                self.interval, self._start_flush)

    async def flush(self) -> None:
        """Commit what is pending for the partitions the consumer still holds (those it
        lost are dropped: their new owner re-reads them from the last commit)."""
        async with self._lock:
            consumer = self.consumer
            if not self._pending or consumer is None:
                return
            offsets, self._pending = self._pending, {}
            held = consumer.assignment()
            offsets = {tp: o for tp, o in offsets.items() if tp in held}
            if not offsets:
                return
            self.requests += 1
            try:
                await consumer.commit(offsets)
            except (KafkaError, IllegalStateError) as exc:
                # The group is rebalancing (CommitFailedError) or the consumer is closing.
                # The offsets go back to the pending ones: the revocation's flush sends them
                # while the partitions are still this member's; a partition that went
                # elsewhere is dropped then, and its records are read again and dropped by
                # the inbox.
                self.failed += 1
                log.warning("offset commit on %s failed: %s", self.name, exc)
                for tp, offset in offsets.items():
                    if offset > self._pending.get(tp, -1):
                        self._pending[tp] = offset
                if self._timer is None and self.interval > 0 and not self._closed:
                    self._timer = asyncio.get_running_loop().call_later(
                        self.interval, self._start_flush)

    async def close(self) -> None:
        """Flush once more and stop the timer (the consumer is about to stop). Bounded: a
        consumer whose coordinator is gone must still stop; what it could not commit is
        read again."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self._flushing is not None:
                    await asyncio.gather(self._flushing, return_exceptions=True)
                await self.flush()
        except TimeoutError:
            log.warning("the last offset commit on %s timed out", self.name)

    # ConsumerRebalanceListener
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Still this generation's member: what is durable is committed before another
        # member is handed the partitions, so it re-reads nothing that was done.
        if revoked:
            await self.flush()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass
