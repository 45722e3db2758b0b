"""Hostile records never take valid ones down (issue 13, item 1), on the real broker.

Valid results from three providers — two publishing as their own SCRAM principals on their
own topics, one on the shared results topic — are sent interleaved with every kind of hostile
record we know of, fast enough to share consumer batches. Every valid result must become
exactly one credential; every hostile record must become a dead letter on its own topic's
`.dlq`, with a reason a provider can read. Before the fix, one header that was not UTF-8
made the consumer drop its whole batch, other providers' results included, and commit past
it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from microcred_shared import dlq
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode
from microcred_shared.contract.events import AssessmentDecided, learner_key
from microcred_testkit.backbone import eventually, learner, provider_headers, result
from microcred_testkit.providers import Admin, SaslPublisher, definition_doc

pytestmark = pytest.mark.integration
VALID_PER_TOPIC = 12


def _replace(headers, name: str, value: bytes | None):
    return [(k, v) for k, v in headers if k != name] + [(name, value)]


def hostile_kinds(event) -> dict[str, tuple[bytes | None, list, str]]:
    """kind -> (payload, headers, what the dead letter's reason must say)."""
    body, h = encode(event), provider_headers(event)
    huge = event.model_copy(update={"learner": event.learner.model_copy(
        update={"given_name": "A" * 900_000})})
    wrong_type = [(k, v) for k, v in h if k != "ce_type"]
    return {
        "header-not-utf8": (body, _replace(h, "ce_source", b"/providers/\xe9cole"),
                            "header 'ce_source' is not UTF-8"),
        "header-without-value": (body, _replace(h, "ce_id", None),
                                 "missing CloudEvents header(s): ce_id"),
        "header-twice": (body, [*h, ("ce_id", uuid.uuid4().hex.encode())],
                         "given more than once: ce_id"),
        "megabyte-string": (encode(huge), h, "given_name"),
        "wrong-content-type": (body, _replace(h, "content-type", b"text/csv"),
                               "unsupported content-type 'text/csv'"),
        "forged-ce-type": (body, [*wrong_type, ("ce_type", AssessmentDecided.ce_type.encode())],
                           "does not belong on this topic"),
        "unknown-ce-type": (body, [*wrong_type, ("ce_type", b"ca.microcred.nope.v1")],
                            "unknown ce_type"),
        "not-json": (b"\xff\xfe{", h, "invalid AssessmentResultSubmitted payload"),
        "empty-body": (None, h, "empty payload"),
    }


async def test_every_valid_result_becomes_one_credential_and_every_hostile_record_a_dead_letter(
        backbone):
    tag = uuid.uuid4().hex[:6]
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        lanes = []  # (provider, definition, topic, producer)
        for name in ("hostile-a", "hostile-b"):
            provider = f"{name}-{tag}"
            await admin.onboard(provider)
            await admin.call("POST", "/v1/admin/definitions",
                             definition_doc(f"{provider}-def", provider, title=name), 201)
            p = await admin.call("POST", f"/v1/admin/providers/{provider}/kafka-principal",
                                 expect=201)
            publisher = SaslPublisher(backbone.sasl_bootstrap, p["username"], p["password"],
                                      p["topic"])
            lanes.append((provider, f"{provider}-def", p["topic"], publisher.producer))
        shared = AIOKafkaProducer(bootstrap_servers=backbone.bootstrap, acks="all")
        lanes.append(("lakeshore-college", "lakeshore-workplace-safety", topics.RESULTS,
                      shared))

        valid: dict[str, str] = {}  # learner email -> topic
        hostile: dict[bytes, tuple[str, str, str]] = {}  # key -> (topic, kind, reason)
        for _, _, _, producer in lanes:
            await producer.start()
        try:
            sends = []
            for i in range(VALID_PER_TOPIC):
                for provider, definition, topic, producer in lanes:
                    who = learner(f"hostile-{tag}-{len(valid)}")
                    event = result(provider, definition, who=who, passed=True)
                    sends.append(await producer.send(topic, encode(event), key=event.key(),
                                                     headers=provider_headers(event)))
                    valid[who.email] = topic
                    kinds = hostile_kinds(result(provider, definition, passed=True,
                                                 who=learner(f"bad-{tag}-{i}")))
                    kind = list(kinds)[(i + len(valid)) % len(kinds)]
                    payload, headers, reason = kinds[kind]
                    key = f"hostile-{tag}-{len(hostile)}-".encode() + b"\xff"
                    hostile[key] = (topic, kind, reason)
                    sends.append(await producer.send(topic, payload, key=key,
                                                     headers=headers))
            await asyncio.gather(*sends)
        finally:
            for _, _, _, producer in lanes:
                await producer.stop()
    assert {kind for _, kind, _ in hostile.values()} == set(hostile_kinds(
        result("x", "y", passed=True)))  # every kind was sent at least once

    async with backbone.http("registry", backbone.operator_token) as client:
        async def count(email: str) -> int:
            r = await client.get(f"/v1/learners/{learner_key(email)}/credentials")
            return r.json()["count"]

        last = list(valid)[-1]
        await eventually(lambda: count(last), lambda n: n >= 1, timeout=90)
        counts = {}
        for email in valid:
            counts[email] = await eventually(lambda e=email: count(e), lambda n: n >= 1,
                                             timeout=30)
    assert counts == dict.fromkeys(valid, 1), "valid results lost or doubled"

    async def letters() -> dict[bytes, dlq.DeadLetter]:
        found: dict[bytes, dlq.DeadLetter] = {}
        for topic in {t for t, _, _ in hostile.values()}:
            for letter in await dlq.read(backbone.bootstrap, topic):
                if letter.key in hostile:
                    found[letter.key] = letter
        return found

    found = await eventually(letters, lambda f: len(f) >= len(hostile), timeout=60)
    missing = {hostile[k][1] for k in hostile if k not in found}
    assert not missing, f"hostile records without a dead letter: {missing}"
    for key, (topic, kind, reason) in hostile.items():
        letter = found[key]
        assert letter.topic == topic, kind
        assert reason in letter.reason, (kind, letter.reason)
