"""What the outbox relay publishes compressed (ADR 2, MICROCRED_KAFKA_COMPRESSION) reads back
byte for byte - key, value and every header, a dead letter's non-UTF-8 one and a header
without a value included - by aiokafka, as our consumers and the dead-letter tool read it,
and by Apache Kafka's own Java client, as any other consumer of the contract would. The
batches on the broker's disk carry the codec, so the read-back is of compressed records.
And a provider's results sent compressed, with any codec Kafka has, are read and issued (the
services could not decompress a batch at all before `aiokafka[lz4,zstd]` brought cramjam)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from microcred_devstack import create_topics
from microcred_devstack.kafka_jars import ensure_kafka_jars
from microcred_shared import outbox
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events import NotificationDelivered
from microcred_shared.outbox import OutboxRelay, Outgoing, make_producer
from microcred_testkit.backbone import (
    eventually,
    learner,
    outbox_database,
    provider_headers,
    result,
)

pytestmark = pytest.mark.integration

READ_BACK = Path(__file__).parent / "java" / "ReadBack.java"
# The codec in a record batch's attributes (its lowest three bits), as Kafka numbers them.
CODECS = {"none": 0, "lz4": 3, "zstd": 4}
Record = tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]


def sent_records(n: int) -> list[Outgoing]:
    """CloudEvents records as the services send them, a payload of a few KB like an issued
    credential's, and one dead letter's headers (a value that is not UTF-8, one with none)."""
    out: list[Outgoing] = []
    for i in range(n):
        event = NotificationDelivered(notification_id=uuid.uuid4(), credential_id=uuid.uuid4(),
                                      recipient=f"learner{i}@learners.example", attempts=1,
                                      delivered_at="2026-12-07T18:00:00+00:00")
        env = new_envelope(event, "/microcred/test", traceparent=(
            f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"))
        body = json.loads(event.model_dump_json())
        body["padding"] = [f"entry {i}.{j} of a long document" for j in range(150)]
        out.append(Outgoing("", event.key(), env.headers(), json.dumps(body).encode()))
    out.append(Outgoing("", b"dead-letter", [("ce_id", b"dl-1"), ("dlq_reason", b"bad"),
                                             ("dlq_raw", b"\xff\xfe\x00binary"),
                                             ("dlq_empty", None)], b"\x00\x01 not json"))
    return out


async def scratch(bb: Any) -> Any:
    return await outbox_database(bb, "codectest")


async def publish_through_the_relay(bb: Any, topic: str, codec: str,
                                    records: list[Outgoing]) -> None:
    engine = await scratch(bb)
    producer = make_producer(bb.bootstrap, f"codectest-{codec}", compression=codec)
    await producer.start()
    relay = OutboxRelay(engine, producer, name=f"codectest-{codec}", poll_interval=0.05,
                        standby_interval=0.1, balance_interval=0.2)
    task = asyncio.create_task(relay.run())
    try:
        async with engine.begin() as conn:
            await outbox.write(conn, [Outgoing(topic, r.key, r.headers, r.payload)
                                      for r in records])

        async def left() -> int:
            async with engine.connect() as conn:
                return int((await conn.exec_driver_sql("SELECT count(*) FROM outbox")).scalar())

        assert await eventually(left, lambda rows: rows == 0, timeout=30) == 0
    finally:
        relay.stop()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await engine.dispose()


async def read_with_aiokafka(bootstrap: str, topic: str, count: int) -> list[Record]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[Record] = []
    try:
        async with asyncio.timeout(60):
            while len(out) < count:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    out += [(r.key, r.value, list(r.headers)) for r in batch]
    finally:
        await consumer.stop()
    return out


def read_with_java(bootstrap: str, topic: str, count: int) -> list[Record]:
    lib = ensure_kafka_jars()
    done = subprocess.run(["java", "-cp", f"{lib}/*", str(READ_BACK), bootstrap, topic,
                           str(count)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

    def unb64(text: str) -> bytes | None:
        return None if text == "-" else base64.b64decode(text)

    out: list[Record] = []
    for line in done.stdout.splitlines():
        _partition, _offset, key, value, *headers = line.split(" ")
        pairs = [h.split("=", 1) for h in headers]
        out.append((unb64(key), unb64(value) or b"", [(k, unb64(v)) for k, v in pairs]))
    return out


def codecs_on_disk(bb: Any, topic: str) -> set[int]:
    """The codec of every record batch in the topic's log segments (magic 2 batches:
    base offset 8 bytes, length 4, leader epoch 4, magic 1, CRC 4, then the attributes)."""
    seen: set[int] = set()
    for segment in Path(bb.stack.kafka.data_dir).glob(f"{topic}-*/*.log"):
        data, at = segment.read_bytes(), 0
        while at + 23 <= len(data):
            length = struct.unpack_from(">i", data, at + 8)[0]
            attributes = struct.unpack_from(">h", data, at + 21)[0]
            seen.add(attributes & 0x07)
            at += 12 + length
    return seen


def as_sent(records: list[Outgoing]) -> list[Record]:
    return sorted((r.key, r.payload, list(r.headers)) for r in records)


def normalised(records: list[Record]) -> list[Record]:
    return sorted((k, v, [(n, bytes(h) if h is not None else None) for n, h in hs])
                  for k, v, hs in records)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
async def test_compressed_records_read_back_whole_by_aiokafka_and_by_the_java_client(
        backbone: Any, codec: str) -> None:
    topic = f"codectest.{codec}.{uuid.uuid4().hex[:8]}"
    await create_topics(backbone.bootstrap, [topic], partitions=8)
    records = sent_records(40)
    await publish_through_the_relay(backbone, topic, codec, records)

    assert codecs_on_disk(backbone, topic) == {CODECS[codec]}
    expected = as_sent(records)
    assert normalised(await read_with_aiokafka(backbone.bootstrap, topic,
                                               len(records))) == expected
    java = await asyncio.to_thread(read_with_java, backbone.bootstrap, topic, len(records))
    assert normalised(java) == expected


async def test_without_compression_the_batches_stay_plain(backbone: Any) -> None:
    """The check above can tell: "none" leaves the codec bits clear."""
    topic = f"codectest.none.{uuid.uuid4().hex[:8]}"
    await create_topics(backbone.bootstrap, [topic], partitions=8)
    await publish_through_the_relay(backbone, topic, "none", sent_records(5))
    assert codecs_on_disk(backbone, topic) == {CODECS["none"]}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_a_providers_compressed_results_are_issued_and_mailed(backbone: Any,
                                                                    codec: str) -> None:
    who = learner(f"codec-{codec}-{uuid.uuid4().hex[:6]}")
    event = result("lakeshore-college", "lakeshore-workplace-safety", who=who, passed=True)
    producer = AIOKafkaProducer(bootstrap_servers=backbone.bootstrap, acks="all",
                                enable_idempotence=True, compression_type=codec)
    await producer.start()
    try:
        await producer.send_and_wait(topics.RESULTS, encode(event), key=event.key(),
                                     headers=provider_headers(event))
    finally:
        await producer.stop()

    async def mails() -> list[Any]:
        return backbone.smtp.to(who.email)

    assert len(await eventually(mails, lambda m: len(m) >= 1, timeout=120)) == 1
