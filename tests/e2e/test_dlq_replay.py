"""Operators replay dead letters once the cause is fixed (ADR 16), on the real broker: a
result dead-lettered because its definition was not published yet is listed with its
reason, replayed (twice, as an operator retrying would) and yields exactly one credential;
the replay is in the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from microcred_shared import dlq
from microcred_shared.contract import topics
from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result
from microcred_testkit.providers import Admin, definition_doc

pytestmark = pytest.mark.integration


def cli(bb, *args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "microcred_shared.dlq", "--bootstrap",
                          bb.bootstrap, *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ}, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


async def titles(bb, email: str, at_least: int) -> list[str]:
    async with bb.http("registry", bb.operator_token) as client:
        async def probe():
            return (await client.get(f"/v1/learners/{learner_key(email)}/credentials")).json()
        body = await eventually(probe, lambda b: b["count"] >= at_least)
    return sorted(c["title"] for c in body["credentials"])


async def test_a_result_for_a_late_definition_is_replayed_once_and_issues_one_credential(
        backbone):
    provider = f"late-{uuid.uuid4().hex[:6]}"
    late, control = f"{provider}-late", f"{provider}-control"
    who = learner(f"dlq-replay-{provider}")
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        await admin.onboard(provider)
        async with ProviderPublisher(backbone.bootstrap) as kafka:
            ce_id = await kafka.publish(result(provider, late, who=who, passed=True))

        letters = await eventually(lambda: dlq.read(backbone.bootstrap, topics.RESULTS,
                                                    reason=late), bool)
        (letter,) = letters
        assert letter.ce_id == ce_id and letter.service == "assessment"
        assert f"unknown credential definition {late!r}" in letter.reason
        (listed,) = cli(backbone, "list", topics.RESULTS, "--reason", late)
        assert listed["dlq_id"] == letter.dlq_id and late in listed["payload"]

        # The operator publishes the missing definition, then replays, and retries that.
        for d, title in ((late, "Published late"), (control, "Control")):
            await admin.call("POST", "/v1/admin/definitions",
                             definition_doc(d, provider, title=title), 201)
        first = cli(backbone, "replay", topics.RESULTS, "--id", letter.dlq_id)
        again = cli(backbone, "replay", topics.RESULTS, "--id", letter.dlq_id)
        assert first == again and first[0]["replayed_as"] != ce_id
        # Same learner, same partition: once the control is in, both replays were applied.
        async with ProviderPublisher(backbone.bootstrap) as kafka:
            await kafka.publish(result(provider, control, who=who, passed=True))
        assert await titles(backbone, who.email, 2) == ["Control", "Published late"]

        entries = (await admin.call("GET", "/v1/admin/audit", expect=200,
                                    outcome="changed"))["entries"]
        replays = [e for e in entries if e["action"] == "dlq.replay"
                   and letter.dlq_id in e["details"]["dlq_ids"]]
        assert len(replays) == 2 and replays[0]["details"]["topic"] == topics.RESULTS


async def test_an_operator_can_find_a_poison_record_and_nothing_else_moves(backbone):
    tag = uuid.uuid4().hex[:8]
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish_raw(b'{"not": "a result", "tag": "' + tag.encode() + b'"',
                                [("ce_id", tag.encode())], key=tag.encode())
    letters = await eventually(lambda: dlq.read(backbone.bootstrap, topics.RESULTS),
                               lambda ls: any(tag.encode() in d.value for d in ls))
    (poison,) = [d for d in letters if tag.encode() in d.value]
    assert "missing CloudEvents header" in poison.reason
    # Reading the dead letters commits nothing: a second reader sees the same.
    again = await dlq.read(backbone.bootstrap, topics.RESULTS)
    assert poison.dlq_id in {d.dlq_id for d in again}
