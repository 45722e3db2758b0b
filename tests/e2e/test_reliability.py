"""SIGKILL each service in the middle of a stream: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result

pytestmark = pytest.mark.integration
N = 240


def stream(run: str) -> tuple[list, set[str]]:
    events, passed = [], set()
    for i in range(N):
        who = learner(f"{run}-{i}", domain="reliability.example")
        score = 95 if i % 5 else 30  # one in five fails
        provider, definition = (("lakeshore-college", "lakeshore-data-analytics-fundamentals")
                                if i % 2 else
                                ("cegep-riviere-du-nord", "cegep-soins-premiers-secours"))
        events.append(result(provider, definition, who=who, score=score))
        if score >= 80:
            passed.add(who.email)
    return events, passed


def delivered_counter(bb, run: str):
    async def delivered() -> int:
        return await bb.scalar(
            "notify", "SELECT count(*) FROM notifications WHERE status = 'delivered' "
            "AND recipient LIKE $1", f"learner{run}-%")
    return delivered


async def publish_slowly(bb, events) -> None:
    async with ProviderPublisher(bb.bootstrap) as kafka:
        for start in range(0, len(events), 20):
            await kafka.publish_many(events[start:start + 20])
            await asyncio.sleep(0.15)


@pytest.mark.parametrize("victim", ["assessment", "issuance", "registry", "notify"])
async def test_a_service_killed_mid_stream_loses_nothing_and_doubles_nothing(backbone, victim):
    run = f"{victim}-{uuid.uuid4().hex[:6]}"
    events, passed = stream(run)
    keys = [learner_key(e) for e in passed]
    sending = asyncio.create_task(publish_slowly(backbone, events))

    delivered = delivered_counter(backbone, run)

    # Kill while work is flowing: some notifications out, the stream still being sent.
    await eventually(delivered, lambda n: n >= 10, timeout=60, interval=0.1)
    backbone.stack.kill_service(victim, signal.SIGKILL)
    await asyncio.sleep(1.0)
    backbone.stack.start_service(victim, backbone.env, timeout=120)
    await sending

    done = await eventually(delivered, lambda n: n >= len(passed), timeout=180)
    await asyncio.sleep(2.0)  # let any would-be duplicate surface before counting
    assert await delivered() == done == len(passed)

    per_learner = await backbone.scalar(
        "registry", "SELECT json_object_agg(learner_key, n) FROM (SELECT learner_key, "
        "count(*) AS n FROM credentials WHERE learner_key = ANY($1) GROUP BY learner_key) t",
        keys)
    import json
    counts = json.loads(per_learner or "{}")
    assert len(counts) == len(passed), "a passed assessment has no credential"
    assert set(counts.values()) == {1}, "a learner got the same credential twice"
    failed_issued = await backbone.scalar(
        "registry", "SELECT count(*) FROM credentials WHERE learner_key = ANY($1)",
        [learner_key(e.learner.email) for e in events if e.learner.email not in passed])
    assert failed_issued == 0

    mails = [m for m in backbone.smtp.messages if str(m["To"]).startswith(f"learner{run}-")]
    by_id = Counter(str(m["Message-ID"]) for m in mails)
    assert {str(m["To"]) for m in mails} == passed
    assert len(by_id) == len(passed)
    if victim != "notify":
        assert len(mails) == len(passed)
    # When notify itself dies between handing a message to SMTP and recording it, the
    # resend carries the same Message-ID: a duplicate the mail system can recognise.
    assert all(n <= 2 for n in by_id.values())


async def test_a_graceful_stop_of_notify_mid_stream_finishes_its_work_and_sends_no_mail_twice(
        backbone):
    """SIGTERM (a deploy, a scale-down): the round in flight is sent and recorded before
    the process exits, so unlike a crash not even the mail server sees a duplicate."""
    run = f"term-{uuid.uuid4().hex[:6]}"
    events, passed = stream(run)
    sending = asyncio.create_task(publish_slowly(backbone, events))

    delivered = delivered_counter(backbone, run)

    await eventually(delivered, lambda n: n >= 10, timeout=60, interval=0.1)
    backbone.stack.kill_service("notify", signal.SIGTERM)
    await eventually(_notify_gone(backbone), lambda gone: gone, timeout=30)
    backbone.stack.start_service("notify", backbone.env, timeout=120)
    await sending
    assert await eventually(delivered, lambda n: n >= len(passed), timeout=180) == len(passed)
    await asyncio.sleep(2.0)
    mails = [m for m in backbone.smtp.messages if str(m["To"]).startswith(f"learner{run}-")]
    assert len(mails) == len(passed)
    assert {str(m["To"]) for m in mails} == passed


def _notify_gone(bb):
    async def probe() -> bool:
        return not bb.stack.service("notify").is_alive()
    return probe
