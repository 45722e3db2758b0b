"""The broker and its clients per record, by producer compression (issue 12, wave 17).

Real records - the events a credential makes (decisions, issued, registered, notifications),
read from the Kafka log segments an uncompressed `run.py --keep-state` left - are published
again to a fresh broker of the devstack, phase after phase with each codec in turn: the
relays' producer (`outbox.make_producer`: acks=all, idempotent) sends them in claims of
`--claim` records at `--rate` records/s, and two consumer groups read every topic (as
registry and notify both read credentials.issued). Printed per phase: the broker's CPU per
record (its JIT compiler's threads apart), the producing and consuming clients' CPU per
record (this process), and the bytes the broker's logs grew by per record.

    uv run --frozen python bench/e2e/run.py --n 500 --skip-baseline --latency-seconds 0 \\
        --keep-state                     # prints "state (logs) kept in DIR"
    uv run --frozen python bench/e2e/kafka_codecs.py DIR [--rate 500 --claim 5 --rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.record.memory_records import MemoryRecords

from microcred_devstack import Stack, create_topics
from microcred_shared.outbox import make_producer

TOPICS = ("microcred.assessment.decisions.v1", "microcred.credentials.issued.v1",
          "microcred.credentials.registered.v1", "microcred.notifications.v1")
READERS = {"microcred.credentials.issued.v1": 2}  # consumer groups per topic, else 1

Record = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


def kept_records(state: Path) -> list[Record]:
    """Every record of TOPICS in the kept broker's segments, in offset order per partition."""
    out: list[Record] = []
    for topic in TOPICS:
        for segment in sorted((state / "kafka" / "data").glob(f"{topic}-*/*.log")):
            records = MemoryRecords(segment.read_bytes())
            while records.has_next():
                batch = records.next_batch()
                if batch is None:
                    break
                for r in batch:
                    out.append((topic, r.key, bytes(r.value), [(k, bytes(v)) for k, v in
                                                               r.headers]))
    return out


def jit_seconds(pid: int) -> float:
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if "Compiler" not in (task / "comm").read_text():
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / 100
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def log_bytes(data_dir: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in data_dir.glob(f"*{suffix}-*/*.log"))


async def phase(bootstrap: str, data_dir: Path, broker: psutil.Process, codec: str,
                records: list[Record], rate: float, claim: int) -> dict[str, float]:
    suffix = f".{codec}.{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [t + suffix for t in TOPICS], partitions=8)
    producer = make_producer(bootstrap, f"codecs-{codec}", compression=codec)
    await producer.start()
    consumers = [AIOKafkaConsumer(t + suffix, bootstrap_servers=bootstrap,
                                  group_id=f"codecs{suffix}.{t}.{g}",
                                  auto_offset_reset="earliest", enable_auto_commit=True)
                 for t in TOPICS for g in range(READERS.get(t, 1))]
    for c in consumers:
        await c.start()
    expected = sum(READERS.get(t, 1) for t, *_ in records)
    got = 0

    async def drain(c: AIOKafkaConsumer) -> None:
        nonlocal got
        while got < expected:
            for batch in (await c.getmany(timeout_ms=200)).values():
                for r in batch:
                    _ = r.value, r.headers
                got += len(batch)

    await asyncio.sleep(1.0)  # groups joined, fetches parked
    me = psutil.Process()
    b0, j0, m0 = broker.cpu_times(), jit_seconds(broker.pid), me.cpu_times()
    w0 = time.monotonic()
    readers = [asyncio.create_task(drain(c)) for c in consumers]
    start = time.monotonic()
    for at in range(0, len(records), claim):
        due = start + at / rate
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        sends = [await producer.send(t + suffix, key=k, value=v, headers=h)
                 for t, k, v, h in records[at:at + claim]]
        await asyncio.gather(*sends)
    sent = time.monotonic() - w0
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    wall = time.monotonic() - w0
    b1, j1, m1 = broker.cpu_times(), jit_seconds(broker.pid), me.cpu_times()
    for c in consumers:
        await c.stop()
    await producer.stop()
    n = len(records)
    broker_s = (b1.user + b1.system) - (b0.user + b0.system)
    return {"broker": 1e6 * (broker_s - (j1 - j0)) / n, "jit": 1e6 * (j1 - j0) / n,
            "clients": 1e6 * ((m1.user + m1.system) - (m0.user + m0.system)) / n,
            "bytes": log_bytes(data_dir, suffix) / n, "wall": wall, "sent": sent}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state", type=Path, help="the state dir a run.py --keep-state left")
    ap.add_argument("--rate", type=float, default=500.0, help="records/s (default 500)")
    ap.add_argument("--claim", type=int, default=5, help="records per send (default 5)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--codecs", default="none,lz4,zstd")
    ap.add_argument("--repeat", type=int, default=4, help="the kept records, N times over")
    args = ap.parse_args()
    records = kept_records(args.state) * args.repeat
    print(f"{len(records)} records of {len(TOPICS)} topics, "
          f"{sum(len(v) for _, _, v, _ in records) / len(records):.0f} B of value on average; "
          f"claims of {args.claim} at {args.rate:g} records/s")
    stack = Stack(Path(tempfile.mkdtemp(prefix="kafka-codecs-")), free_ports=True)
    stack.start_kafka()
    try:
        assert stack.kafka is not None and stack.kafka.pid is not None
        broker = psutil.Process(stack.kafka.pid)
        codecs = args.codecs.split(",")
        await phase(stack.bootstrap, stack.kafka.data_dir, broker, "none",
                    records[:500], args.rate, args.claim)  # warm-up, not counted
        rows: dict[str, list[dict[str, float]]] = {c: [] for c in codecs}
        for r in range(args.rounds):
            order = codecs if r % 2 == 0 else codecs[::-1]
            for codec in order:
                res = await phase(stack.bootstrap, stack.kafka.data_dir, broker, codec,
                                  records, args.rate, args.claim)
                rows[codec].append(res)
                print(f"round {r + 1} {codec:5}: broker {res['broker']:6.1f} µs/record "
                      f"(+JIT {res['jit']:5.1f}), clients {res['clients']:6.1f} µs/record, "
                      f"log {res['bytes']:7.0f} B/record, sent in {res['sent']:.1f}s, "
                      f"read in {res['wall']:.1f}s "
                      f"(load average {psutil.getloadavg()[0]:.1f})", flush=True)
        print("median per codec: " + "; ".join(
            f"{c} broker {sorted(x['broker'] for x in v)[len(v) // 2]:.1f}, clients "
            f"{sorted(x['clients'] for x in v)[len(v) // 2]:.1f} µs/record, "
            f"{sorted(x['bytes'] for x in v)[len(v) // 2]:.0f} B" for c, v in rows.items()))
    finally:
        stack.down(purge=True)


def run() -> Any:
    return asyncio.run(main())


if __name__ == "__main__":
    run()
