"""The broker and the database SIGKILLed mid-stream on the real stack (issue 13, items 3, 4
and 9): nothing lost, nothing doubled; HTTP ingest answers 202 (kept in the outbox) or a 503
with Retry-After, never a 500; the services' logs stay readable while a part is down.

Results go in over HTTP, as most partner institutions send them, by a few clients that do
what the 503 tells them (wait Retry-After, send again, same result id)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter

import pytest

from microcred_devstack.processes import wait_port_closed
from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import eventually, learner, result

pytestmark = pytest.mark.integration
N = 160
SERVICES = ("assessment", "issuance", "registry", "notify")
# Lines a service may write per second of outage (down, still down, back, a few per
# client): before issue 13 they wrote 1,100-1,600 a second.
MAX_LINES_PER_SECOND = 5.0


class Sender:
    """HTTP clients of one provider, honouring 503 + Retry-After (capped for the test)."""

    def __init__(self, bb) -> None:
        self.bb = bb
        self.statuses: Counter[int] = Counter()

    async def send_all(self, events, clients: int = 4) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        for e in events:
            queue.put_nowait(e)

        async def client() -> None:
            async with self.bb.http("assessment", self.bb.api_keys["lakeshore-college"]) as c:
                while not queue.empty():
                    event = queue.get_nowait()
                    while True:
                        try:
                            r = await c.post("/v1/assessment-results",
                                             content=event.model_dump_json(),
                                             headers={"content-type": "application/json"})
                        except Exception:  # the service itself is up: count, retry
                            self.statuses[0] += 1
                            await asyncio.sleep(0.5)
                            continue
                        self.statuses[r.status_code] += 1
                        if r.status_code == 202:
                            break
                        assert r.status_code == 503, r.text
                        assert r.headers["content-type"] == "application/problem+json"
                        await asyncio.sleep(min(float(r.headers["retry-after"]), 1.0))
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client() for _ in range(clients)))


def stream(run: str) -> tuple[list, set[str]]:
    events, passed = [], set()
    for i in range(N):
        who = learner(f"{run}-{i}", domain="outage.example")
        score = 95 if i % 4 else 20
        events.append(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                             who=who, score=score))
        if score >= 80:
            passed.add(who.email)
    return events, passed


def log_sizes(bb) -> dict[str, int]:
    return {name: (bb.stack.log_dir / f"{name}.log").stat().st_size for name in SERVICES}


def logged_between(bb, before: dict[str, int], after: dict[str, int]) -> dict[str, list[str]]:
    out = {}
    for name in SERVICES:
        with (bb.stack.log_dir / f"{name}.log").open("rb") as f:
            f.seek(before[name])
            out[name] = f.read(after[name] - before[name]).decode(errors="replace").splitlines()
    return out


def assert_few_lines(bb, before, during, seconds: float) -> None:
    lines = logged_between(bb, before, during)
    rates = {s: len(lines[s]) / seconds for s in SERVICES}
    print(f"log lines per second during the {seconds:.0f} s outage: "  # figures (-s)
          + ", ".join(f"{s} {r:.2f}" for s, r in rates.items()))
    noisy = {s: lines[s][:12] for s in SERVICES if rates[s] > MAX_LINES_PER_SECOND}
    assert not noisy, f"lines per second {rates}; first lines: {json.dumps(noisy, indent=1)}"


async def outcome(bb, run: str, events, passed: set[str]) -> None:
    async def delivered() -> int:
        return await bb.scalar("notify", "SELECT count(*) FROM notifications WHERE status = "
                               "'delivered' AND recipient LIKE $1", f"learner{run}-%")

    done = await eventually(delivered, lambda n: n >= len(passed), timeout=240, interval=1)
    await asyncio.sleep(2.0)  # let any would-be duplicate surface
    assert await delivered() == done == len(passed), "a passed result was lost or doubled"
    rows = await bb.scalar("notify", "SELECT count(*) FROM notifications "
                           "WHERE recipient LIKE $1", f"learner{run}-%")
    assert rows == len(passed), "notification rows doubled"
    keys = [learner_key(e) for e in passed]
    counts = json.loads(await bb.scalar(
        "registry", "SELECT json_object_agg(learner_key, n) FROM (SELECT learner_key, "
        "count(*) AS n FROM credentials WHERE learner_key = ANY($1) GROUP BY learner_key) t",
        keys) or "{}")
    assert len(counts) == len(passed) and set(counts.values()) == {1}
    failed = [learner_key(e.learner.email) for e in events if e.learner.email not in passed]
    assert await bb.scalar("registry", "SELECT count(*) FROM credentials WHERE "
                           "learner_key = ANY($1)", failed) == 0


async def test_the_broker_killed_mid_stream_loses_nothing_doubles_nothing_and_logs_little(
        backbone):
    run = f"kafka-{uuid.uuid4().hex[:6]}"
    events, passed = stream(run)
    sender = Sender(backbone)
    sending = asyncio.create_task(sender.send_all(events))
    await eventually(lambda: asyncio.sleep(0, sender.statuses[202]), lambda n: n >= N // 4,
                     timeout=60, interval=0.1)

    kafka = backbone.stack.kafka
    assert kafka is not None and kafka.pid
    os.kill(kafka.pid, signal.SIGKILL)
    for port in filter(None, (kafka.port, kafka.controller_port, kafka.sasl_port)):
        wait_port_closed(port, timeout=20)
    before, down_at = log_sizes(backbone), time.monotonic()
    await asyncio.sleep(15)
    during = log_sizes(backbone)
    outage = time.monotonic() - down_at
    backbone.stack.start_kafka(timeout=120)
    await sending

    await outcome(backbone, run, events, passed)
    print(f"broker killed for 15 s under HTTP ingest of {N} results: answers "
          f"{dict(sender.statuses)}; lost 0, doubled 0")  # figures (-s)
    assert set(sender.statuses) <= {202, 503}, sender.statuses  # never a 500
    assert_few_lines(backbone, before, during, outage)


async def test_the_database_killed_mid_stream_gives_503s_loses_nothing_doubles_nothing(
        backbone):
    run = f"pg-{uuid.uuid4().hex[:6]}"
    events, passed = stream(run)
    sender = Sender(backbone)
    sending = asyncio.create_task(sender.send_all(events))
    await eventually(lambda: asyncio.sleep(0, sender.statuses[202]), lambda n: n >= N // 4,
                     timeout=60, interval=0.1)

    pg = backbone.stack.pg
    assert pg is not None and pg.pid and pg.port
    before = log_sizes(backbone)
    os.kill(pg.pid, signal.SIGKILL)
    wait_port_closed(pg.port, timeout=20)
    down_at = time.monotonic()
    await asyncio.sleep(15)
    during = log_sizes(backbone)
    outage = time.monotonic() - down_at
    backbone.stack.start_postgres()
    await sending

    await outcome(backbone, run, events, passed)
    print(f"database killed for 15 s under HTTP ingest of {N} results: answers "
          f"{dict(sender.statuses)}; lost 0, doubled 0")  # figures (-s)
    assert sender.statuses[503] > 0, "the outage was not seen by the clients"
    assert set(sender.statuses) <= {202, 503}, sender.statuses  # never a 500
    assert_few_lines(backbone, before, during, outage)
