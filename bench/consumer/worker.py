"""One side of `run.py`: the shared consumer loop and outbox relay of the tree it runs in,
fed batches of CHUNK records at RATE records/s (while it keeps up) on database URL; prints
its CPU per record (this process, and the server's backends for that database) as JSON.

    python worker.py URL RATE CHUNK N
"""

import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psutil
from aiokafka.structs import ConsumerRecord

import microcred_shared
from microcred_shared import consumer as consumer_module
from microcred_shared.consumer import BatchConsumer
from microcred_shared.contract.cloudevents import Envelope
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.db import (
    SHARED_TABLES,
    add_inbox_digest,
    add_outbox_shard,
    create_tables,
    make_engine,
    migrate,
)
from microcred_shared.outbox import OutboxRelay, Outgoing
from microcred_testkit.backbone import result

URL, RATE, CHUNK, N = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
DATABASE = URL.rsplit("/", 1)[1]
_offsets = itertools.count()


def record() -> ConsumerRecord:
    event = result("lakeshore-college", "lakeshore-workplace-safety", passed=True)
    env = Envelope(id=str(uuid.uuid4()), type=event.ce_type,
                   source="/providers/lakeshore-college", time=datetime.now(UTC))
    return ConsumerRecord("t", 0, next(_offsets), 0, 0, str(uuid.uuid4()).encode(),
                          event.model_dump_json().encode(), None, 0, 0, env.headers())


class Producer:
    """Acknowledges every send at once: a record at a time (`send`, trees before wave 19)
    or a batch per partition (`send_batch`, its batches built as aiokafka's producer does)."""

    def __init__(self) -> None:
        self.sent = 0
        self.reached = asyncio.Event()
        self.target = 0
        self.client = self.cluster = self  # `producer.client.cluster`, aiokafka's metadata

    def _took(self, records: int) -> asyncio.Future[None]:
        self.sent += records
        if self.sent >= self.target:
            self.reached.set()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send(self, topic: str, *, value: bytes, key: bytes | None,
                   headers: Any) -> asyncio.Future[None]:
        return self._took(1)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(8))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(8))

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder
        return BatchBuilder(256 * 1024, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        batch._build()  # as the producer's sender does
        return self._took(batch.record_count())

    async def until(self, count: int) -> None:
        self.target = count
        self.reached.clear()
        if self.sent < count:
            await self.reached.wait()


async def echo(conn: Any, items: list[Any]) -> dict[int, str]:
    for item in items:
        item.outgoing.append(Outgoing("out", item.record.key,
                                      [("ce_id", item.envelope.id.encode())], item.record.value))
    return {}


def backends() -> list[psutil.Process]:
    """The server processes of this database (their title names it)."""
    return [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and f" {DATABASE} " in " ".join(p.info["cmdline"]) + " "]


def cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def main() -> None:
    engine = make_engine(URL)
    await migrate(engine, [create_tables(SHARED_TABLES), add_inbox_digest, add_outbox_shard])
    producer = Producer()
    relay = OutboxRelay(engine, producer, name=DATABASE)  # type: ignore[arg-type]
    # As a service's subscription runs it: keeping its connection between batches where the
    # tree's consumer can (`hold`, since wave 12).
    held = {"hold": consumer_module.HOLD} if hasattr(consumer_module, "HOLD") else {}
    consumer = BatchConsumer(service="bench", engine=engine, handler=echo,
                             expected=AssessmentResultSubmitted,
                             on_committed=lambda wrote: relay.wake() if wrote else None,
                             **held)
    task = asyncio.create_task(relay.run())
    warm = [[record() for _ in range(CHUNK)] for _ in range(40)]
    batches = [[record() for _ in range(CHUNK)] for _ in range(N // CHUNK)]
    for batch in warm:
        await consumer.apply(batch)
    await producer.until(len(warm) * CHUNK)
    await asyncio.sleep(1.0)
    servers, me = backends(), psutil.Process()
    c0, s0, w0 = me.cpu_times(), cpu(servers), time.monotonic()
    start = time.monotonic()
    for i, batch in enumerate(batches):
        due = start + i * CHUNK / RATE
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        await consumer.apply(batch)
    await producer.until(len(warm) * CHUNK + len(batches) * CHUNK)
    await asyncio.sleep(0.6)  # the relay's last deletion (its next poll)
    c1, s1, w1 = me.cpu_times(), cpu(servers), time.monotonic()
    relay.stop()
    await task
    if held:
        await consumer.close()
    await engine.dispose()
    client = c1.user + c1.system - c0.user - c0.system
    print(json.dumps({"tree": os.path.dirname(microcred_shared.__file__), "wall": w1 - w0,
                      "client_ms_per_record": client / N * 1000,
                      "server_ms_per_record": (s1 - s0) / N * 1000}))


asyncio.run(main())
