"""A producer for the outbox relay without a broker (tests and benchmarks): it takes the
relay's record batches through aiokafka's batch API as `AIOKafkaProducer` does
(`partitions_for`, `create_batch`, `send_batch`), reads each batch's records back out of
its built bytes (what a broker would have stored), and acknowledges at once - or fails
the batches of `failing` partitions ("*" for all)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from microcred_shared.outbox import MAX_BATCH_BYTES


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    batch: int  # which send_batch call carried it, counted from 0


class AckingProducer:
    """Records every record it is sent, in order, with its partition and batch."""

    def __init__(self, partitions: int = 8) -> None:
        self.partitions = partitions
        self.published: list[Published] = []
        self.batches = 0
        self.codecs: list[int] = []  # each batch's codec (attributes' lowest three bits)
        self.failing: set[int] | str = set()
        self.unavailable: set[int] = set()  # partitions without a leader
        self.client = self  # `producer.client.cluster`, where aiokafka keeps its metadata
        self.cluster = self

    @property
    def sent(self) -> list[bytes | None]:
        return [p.value for p in self.published]

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions)) - self.unavailable

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    async def took(self, records: list[Published]) -> None:
        """Called with each batch's records before it is acknowledged (for subclasses)."""

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        assert 0 <= partition < self.partitions, partition
        data = bytes(batch._build())
        self.codecs.append(data[22] & 0x07)  # magic 2: the attributes' low byte
        records = MemoryRecords(data)
        taken: list[Published] = []
        while records.has_next():
            for r in records.next_batch():
                taken.append(Published(topic, partition, r.key, r.value, list(r.headers),
                                       self.batches))
        self.batches += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failing == "*" or partition in self.failing:
            done.set_exception(RuntimeError(f"the broker did not acknowledge {partition}"))
            return done
        self.published += taken
        await self.took(taken)
        done.set_result(None)
        return done
