"""Counts the Kafka requests of every Python process that starts with this folder on its
PYTHONPATH and BENCH_KAFKA_REQUESTS_DIR set (`run.py --count-requests`: the services, the
baseline's relays, the driver): by client id and API, with the records, partitions and
bytes of each produce and each fetch's answer. Each process appends its running totals to
`<dir>/<pid>.jsonl` twice a second; run.py takes the difference over its windows.

aiokafka sends every request through `AIOKafkaConnection.send`; this wraps it. A benchmark
aid only: nothing of the services loads it otherwise."""

from __future__ import annotations

import atexit
import json
import os
import struct
import sys
import threading
import time
from typing import Any

# Kafka's record batch (magic 2): its length at byte 8, its record count at byte 57.
_BATCH_HEAD = 61


def batches(data: bytes | None) -> tuple[int, int]:
    """How many record batches and records a partition's bytes hold."""
    count = records = 0
    at, size = 0, len(data or b"")
    while data and at + _BATCH_HEAD <= size:
        records += struct.unpack_from(">i", data, at + 57)[0]
        count += 1
        at += 12 + struct.unpack_from(">i", data, at + 8)[0]
    return count, records


class Counts:
    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, int]] = {}
        self.stopped = threading.Event()  # ends the writer thread (never, in a benchmark)

    def add(self, key: str, **values: int) -> None:
        into = self.by_key.setdefault(key, {})
        for name, value in values.items():
            into[name] = into.get(name, 0) + value


def install(out_dir: str) -> Counts:
    from aiokafka import conn

    counts = Counts()
    send = conn.AIOKafkaConnection.send

    def counted(self: Any, request: Any, expect_response: bool = True) -> Any:
        api = type(request).__name__.removesuffix("Request")
        key = f"{self._client_id}|{api}"
        if api == "Produce":
            parts = records = size = 0
            for _topic, partitions in request._topics:
                for _partition, data in partitions:
                    parts += 1
                    records += batches(data)[1]
                    size += len(data)
            counts.add(key, n=1, partitions=parts, records=records, bytes=size)
        elif api == "Fetch":
            counts.add(key, n=1, partitions=sum(len(p) for _t, p in request._topics))
        else:
            counts.add(key, n=1)
        sent = send(self, request, expect_response)
        if api != "Fetch" or not expect_response:
            return sent

        async def answered() -> Any:
            response = await sent
            parts = filled = records = size = 0
            for topic in response.topics:
                for partition in topic[1]:
                    parts += 1
                    if data := partition[-1]:
                        filled += 1
                        size += len(data)
                        records += batches(data)[1]
            counts.add(key, answers=1, answer_partitions=parts, filled=filled,
                       records=records, bytes=size, empty=int(records == 0))
            return response

        return answered()

    conn.AIOKafkaConnection.send = counted
    path = os.path.join(out_dir, f"{os.getpid()}.jsonl")
    who = " ".join(sys.argv)[:200]

    def dump() -> None:
        line = json.dumps({"t": time.time(), "pid": os.getpid(), "argv": who,
                           "counts": {k: dict(v) for k, v in list(counts.by_key.items())}})
        with open(path, "a") as f:
            f.write(line + "\n")

    def every_half_second() -> None:
        while not counts.stopped.wait(0.5):  # set by a test that installed it in-process
            try:
                dump()
            except Exception:  # a dict resized under us: the next round has it
                pass

    threading.Thread(target=every_half_second, name="kafka-requests", daemon=True).start()
    atexit.register(dump)
    return counts


if (_dir := os.environ.get("BENCH_KAFKA_REQUESTS_DIR")) and not getattr(
        sys, "_bench_kafka_requests", False):
    try:
        install(_dir)
        sys._bench_kafka_requests = True  # type: ignore[attr-defined]
    except ImportError:  # a Python without aiokafka (a tool): nothing to count
        pass
