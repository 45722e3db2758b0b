"""Full fetches against incremental fetch sessions (KIP-227) at a low rate (issue 12).

    uv run python bench/consumer/fetch_sessions.py [--rate 250 --seconds 10 --pairs 3]
    uv run python bench/consumer/fetch_sessions.py --rate 0   # one record at a time
    uv run python bench/consumer/fetch_sessions.py --direct 5000  # one fetch's own cost

Starts the devstack's broker alone (own state dir), four topics of 8 partitions, and relays
records one at a time through them as the services' hops do: a producer (acks=all,
idempotent) offers `--rate` records/s to hop0; four consumers (each its own group, the
services' fetch wait) forward each batch to the next topic and commit once a second. Phases
alternate between aiokafka's own full fetches ("full") and `use_fetch_sessions` ("session"),
each with fresh consumers and `--seconds` long, after a warm-up phase. Printed per phase:
CPU per relayed record of the broker and of this process (producer + four consumers), and
fetches and partitions on the wire per record. No database, no services: what the broker
and the client's protocol code cost per record at a low rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest

from microcred_devstack.kafka import KafkaNode, create_topics
from microcred_shared.fetch_sessions import SessionClient, SessionFetch, use_fetch_sessions
from microcred_shared.runtime import FETCH_WAIT_MS

HOPS = 4
PAYLOAD = b"x" * 900  # about an event's size


class Counting:
    """Fetches sent and the partitions they carried (on the wire), across all consumers."""

    def __init__(self) -> None:
        self.fetches = self.partitions = 0

    def install(self, consumer: AIOKafkaConsumer) -> None:
        fetcher = consumer._fetcher
        client = fetcher._client

        async def send(node_id: int, request: Any, **kw: Any) -> Any:
            if isinstance(request, FetchRequest):
                self.fetches += 1
                self.partitions += (len(request.changed) if isinstance(request, SessionFetch)
                                    else sum(len(p) for _, p in request.topics))
            return await type(client).send(client, node_id, request, **kw)

        client.send = send  # the instance's own: SessionClient or aiokafka's


async def relay(bootstrap: str, hop: int, sessions: bool, stop: asyncio.Event,
                producer: AIOKafkaProducer, counting: Counting, done: list[int],
                drained: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        f"hop{hop}", bootstrap_servers=bootstrap, group_id=f"bench-hop{hop}",
        enable_auto_commit=False, auto_offset_reset="latest", fetch_max_wait_ms=FETCH_WAIT_MS)
    await consumer.start()
    if sessions:
        use_fetch_sessions(consumer)
    counting.install(consumer)
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [r for rs in batch.values() for r in rs]
            if records and hop + 1 < HOPS:
                futures = [await producer.send(f"hop{hop + 1}", r.value, key=r.key)
                           for r in records]
                await asyncio.gather(*futures)
            elif records:
                done[0] += len(records)
                if done[0] >= done[1]:
                    drained.set()
            if time.monotonic() - last_commit >= 1.0:
                await consumer.commit()
                last_commit = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            await consumer.commit()
        await consumer.stop()


async def phase(bootstrap: str, sessions: bool, rate: float, seconds: float,
                broker: psutil.Process) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=0)
    await producer.start()
    stop, drained, counting = asyncio.Event(), asyncio.Event(), Counting()
    done = [0, 1 << 62]  # relayed through the last hop, and how many were offered
    tasks = [asyncio.create_task(relay(bootstrap, h, sessions, stop, producer, counting, done,
                                       drained)) for h in range(HOPS)]
    await asyncio.sleep(3.0)  # groups joined, first fetches sent
    counting.fetches = counting.partitions = 0
    done[0] = 0
    b0, c0, t0 = sum(broker.cpu_times()[:2]), time.process_time(), time.monotonic()
    sent = 0
    while (now := time.monotonic()) < t0 + seconds:
        if not rate:  # one record at a time: every fetch of every hop carries one record
            done[1] = sent + 1
            drained.clear()
            await producer.send("hop0", PAYLOAD, key=str(random.random()).encode())
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), 10)
            continue
        due = int((now - t0) * rate)
        while sent < due:
            await producer.send("hop0", PAYLOAD, key=str(random.random()).encode())
            sent += 1
        await asyncio.sleep(0.002)
    done[1] = sent
    if done[0] < sent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), 10)
    b1, c1 = sum(broker.cpu_times()[:2]), time.process_time()
    n = max(done[0], 1)
    result = {"records": done[0], "offered": sent, "broker_ms": 1000 * (b1 - b0) / n,
              "client_ms": 1000 * (c1 - c0) / n, "fetches": counting.fetches / n,
              "partitions": counting.partitions / n}
    stop.set()
    await asyncio.gather(*tasks)
    await producer.stop()
    return result


async def fetches(bootstrap: str, sessions: bool, n: int,
                  broker: psutil.Process) -> tuple[float, float]:
    """`n` fetches in a row, each answered at once with the one record partition 0 holds
    at the fetch position (the other 7 partitions are empty), as a fetch at a low rate is:
    broker and client CPU per fetch, in microseconds."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    node = next(iter(client.cluster.brokers())).nodeId  # the one broker
    ends = {p: 0 for p in range(8)}  # fetch positions: the end of each partition but 0
    for topic_partition, offset in (await end_offsets(bootstrap)).items():
        ends[topic_partition.partition] = offset
    ends[0] = max(ends[0] - 1, 0)
    request = FetchRequest(0, 0, 52428800, 0,
                           [("hop0", [(p, at, 1048576) for p, at in ends.items()])])
    sender: Any = SessionClient(client) if sessions else client
    b0, c0 = sum(broker.cpu_times()[:2]), time.process_time()
    for _ in range(n):
        await sender.send(node, sender.session(node).request(request) if sessions else request)
    b1, c1 = sum(broker.cpu_times()[:2]), time.process_time()
    await client.close()
    return 1e6 * (b1 - b0) / n, 1e6 * (c1 - c0) / n


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition("hop0", p) for p in range(8)]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def direct(args: argparse.Namespace, bootstrap: str, broker: psutil.Process) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait("hop0", PAYLOAD, partition=0)
    await producer.stop()
    print(f"fetches in a row, {args.direct} a block: warm-up")
    await fetches(bootstrap, False, args.direct, broker)
    await fetches(bootstrap, True, args.direct, broker)
    rows: dict[str, list[tuple[float, float]]] = {"full": [], "session": []}
    for i in range(args.pairs):
        for sessions in ((False, True) if i % 2 == 0 else (True, False)):
            name = "session" if sessions else "full"
            rows[name].append(r := await fetches(bootstrap, sessions, args.direct, broker))
            print(f"  {name:8s} broker {r[0]:6.1f} us/fetch  client {r[1]:6.1f} us/fetch",
                  flush=True)
    for k, what in enumerate(("broker", "client")):
        full = statistics.median(r[k] for r in rows["full"])
        sess = statistics.median(r[k] for r in rows["session"])
        print(f"median {what} us/fetch: full {full:.1f}  session {sess:.1f}  "
              f"ratio {sess / full:.2f}")


async def main_async(args: argparse.Namespace) -> None:
    node = KafkaNode(Path(tempfile.mkdtemp(prefix="fetch-sessions-"))).start()
    try:
        node.wait_ready()
        await create_topics(node.bootstrap, [f"hop{h}" for h in range(HOPS)])
        broker = psutil.Process(node.pid)
        if args.direct:
            await direct(args, node.bootstrap, broker)
            return
        print(f"broker pid {node.pid}; warm-up ({args.seconds:.0f} s, full fetches)")
        await phase(node.bootstrap, False, args.rate, args.seconds, broker)
        rows: dict[str, list[dict[str, float]]] = {"full": [], "session": []}
        for i in range(args.pairs):
            order = (False, True) if i % 2 == 0 else (True, False)
            for sessions in order:
                r = await phase(node.bootstrap, sessions, args.rate, args.seconds, broker)
                name = "session" if sessions else "full"
                rows[name].append(r)
                busy = psutil.cpu_percent(interval=None)
                print(f"  {name:8s} {r['records']:5.0f}/{r['offered']:.0f} relayed  broker "
                      f"{r['broker_ms']:.3f} ms/record  client {r['client_ms']:.3f} ms/record  "
                      f"fetches {r['fetches']:.2f}/record  partitions on the wire "
                      f"{r['partitions']:.2f}/record  (machine {busy:.0f}% busy)", flush=True)
        for key in ("broker_ms", "client_ms", "fetches", "partitions"):
            full = statistics.median(r[key] for r in rows["full"])
            sess = statistics.median(r[key] for r in rows["session"])
            print(f"median {key:10s} full {full:.3f}  session {sess:.3f}  "
                  f"ratio {sess / full if full else float('nan'):.2f}")
    finally:
        node.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=250.0,
                    help="records/s offered; 0: one record at a time, the next once it is "
                         "through all hops (batches of one whatever the machine's load)")
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--direct", type=int, default=0, metavar="N",
                    help="instead: blocks of N fetches in a row, full against session")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
