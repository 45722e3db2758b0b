"""One side of `relay.py`: the outbox relay of the tree it runs in, publishing to the real
broker; prints the CPU per record of its thread (the relay's
alone: the rows are written on another) and of its process, as JSON.

    python relay_worker.py URL BOOTSTRAP PREFIX MODE N RATE CHUNK

MODE "burst": N rows are written first, then the relay publishes them (claims of 1,000).
MODE "rate": rows are written CHUNK at a time at RATE rows/s, the relay woken after each
write (as the consumer loop wakes it), while it publishes. The rows are a credential's
four as the backbone's relays publish them (decision 0.83 KB, issued 4.84, registered 1.44,
notification 0.48; CloudEvents headers; a learner's 64-character key) on topics PREFIX.*.
"""

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psutil

import microcred_shared
from microcred_shared import outbox
from microcred_shared.db import SHARED_TABLES, add_outbox_shard, create_tables, make_engine, migrate
from microcred_shared.outbox import OutboxRelay, Outgoing, make_producer

URL, BOOTSTRAP, PREFIX, MODE = sys.argv[1:5]
N, RATE, CHUNK = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
SIZES = {"decisions": 830, "issued": 4840, "registered": 1440, "notifications": 480}
COMPRESSION = os.environ.get("RELAY_BENCH_COMPRESSION", "none")
RELAY_OPTIONS = json.loads(os.environ.get("RELAY_BENCH_RELAY_OPTIONS", "{}"))


def credential(n: int) -> list[Outgoing]:
    key = uuid.uuid4().hex.encode() * 2
    out = []
    for name, size in SIZES.items():
        headers: list[tuple[str, bytes | None]] = [
            ("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_type", f"ca.microcred.{name}.v1".encode()), ("ce_source", b"/services/bench"),
            ("ce_time", datetime.now(UTC).isoformat().encode()),
            ("content-type", b"application/json")]
        body = json.dumps({"n": n, "id": str(uuid.uuid4()), "name": name}).encode()
        filler = (uuid.uuid4().hex * (size // 32 + 1)).encode()  # one uuid repeated
        out.append(Outgoing(f"{PREFIX}.{name}", key, headers,
                            body[:-1] + b',"p":"' + filler[:max(0, size - len(body) - 8)] + b'"}'))
    return out


def writer(rows: list[Outgoing], wake: Callable[[], None], started: float) -> None:
    """Writes the rows CHUNK at a time at RATE rows/s on a thread of its own (its own loop
    and engine), waking the relay after each write, so that the relay's thread's CPU is
    the relay's alone."""
    async def write() -> None:
        engine = make_engine(URL)
        for i in range(0, len(rows), CHUNK):
            due = started + i / RATE
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            async with engine.begin() as conn:
                await outbox.write(conn, rows[i:i + CHUNK])
            wake()
        await engine.dispose()
    asyncio.run(write())


async def main() -> None:
    engine = make_engine(URL)
    await migrate(engine, [create_tables(SHARED_TABLES), add_outbox_shard])
    producer = make_producer(BOOTSTRAP, f"relaybench-{PREFIX}", compression=COMPRESSION)
    await producer.start()
    relay = OutboxRelay(engine, producer, name=PREFIX, **RELAY_OPTIONS)
    credentials = [credential(n) for n in range(N // len(SIZES) + 100)]
    warm = [r for c in credentials[:100] for r in c]
    rows = [r for c in credentials[100:] for r in c]
    async with engine.begin() as conn:
        await outbox.write(conn, warm)
    task = asyncio.create_task(relay.run())
    while relay.published < len(warm):  # noqa: ASYNC110 (the relay counts; no event)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    if MODE == "burst":
        for i in range(0, len(rows), 1000):
            async with engine.begin() as conn:
                await outbox.write(conn, rows[i:i + 1000])
    # The relay's thread (this one) and the whole process, from here to the last ack.
    loop, me = asyncio.get_running_loop(), psutil.Process()
    t0, c0, w0 = time.thread_time(), me.cpu_times(), time.monotonic()
    if MODE == "burst":
        relay.wake()
    else:
        thread = threading.Thread(target=writer, args=(
            rows, lambda: loop.call_soon_threadsafe(relay.wake), w0))
        thread.start()
    while relay.published < len(warm) + len(rows):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    t1, c1, w1 = time.thread_time(), me.cpu_times(), time.monotonic()
    relay.stop()
    await task
    await producer.stop()
    await engine.dispose()
    cpu = c1.user + c1.system - c0.user - c0.system
    print(json.dumps({"tree": os.path.dirname(microcred_shared.__file__), "wall": w1 - w0,
                      "rows": len(rows), "ms_per_record": (t1 - t0) / len(rows) * 1000,
                      "process_ms_per_record": cpu / len(rows) * 1000}))


asyncio.run(main())
