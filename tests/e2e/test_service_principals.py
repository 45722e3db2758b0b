"""The services log in to Kafka as their own principals `svc-<service>` on the SASL
listener, and each principal may do only what its service needs (ADR 19): the backbone
works end to end that way, a service's credentials cannot forge another service's events
or read what it does not consume, and every such refusal reaches the audit log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from microcred_devstack.service_principals import service_password
from microcred_shared.contract import topics
from microcred_shared.contract.events import learner_key
from microcred_shared.contract.topics import service_user
from microcred_testkit.backbone import eventually, learner, result
from microcred_testkit.providers import Admin

pytestmark = pytest.mark.integration
SERVICES = ("assessment", "issuance", "registry", "notify")


def login(bb, service: str) -> dict[str, str]:
    """The service's own SCRAM login, as the devstack keeps it (0600 file in the state dir)."""
    return {"bootstrap_servers": bb.sasl_bootstrap, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": service_user(service),
            "sasl_plain_password": service_password(bb.stack.state_dir, service)}


async def test_the_services_run_the_backbone_over_sasl_as_their_own_principals(backbone):
    for service in SERVICES:
        pid = backbone.stack.service(service, backbone.env).pid
        assert pid is not None, f"{service} is not running"
        env = psutil.Process(pid).environ()
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == backbone.sasl_bootstrap  # SASL listener only
        assert env["MICROCRED_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["MICROCRED_KAFKA_SASL_USERNAME"] == f"svc-{service}"

    who = learner(f"svc-principals-{uuid.uuid4().hex[:6]}")
    res = result("lakeshore-college", "lakeshore-workplace-safety", who=who, passed=True)
    async with backbone.http("assessment", backbone.api_keys["lakeshore-college"]) as client:
        sent = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                 headers={"content-type": "application/json"})
    assert sent.status_code == 202, sent.text
    async with backbone.http("registry", backbone.operator_token) as client:
        async def credentials():
            got = await client.get(f"/v1/learners/{learner_key(who.email)}/credentials")
            return got.json()["credentials"]
        (cred,) = await eventually(credentials, lambda c: len(c) >= 1)
    mails = await eventually(lambda: _mails(backbone, who.email), lambda m: len(m) >= 1)
    assert cred["url"] in mails[0].get_content()


async def _mails(bb, email: str) -> list:
    return bb.smtp.to(email)


async def _cannot_write(bb, service: str, topic: str) -> None:
    producer = AIOKafkaProducer(acks="all", request_timeout_ms=10_000, **login(bb, service))
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topic, b"{}", key=b"forged")
    finally:
        await producer.stop()


async def _cannot_read(bb, service: str, topic: str) -> None:
    # A group the principal may use: the refusal is about the topic, not the group.
    consumer = AIOKafkaConsumer(topic, group_id=f"microcred-{service}.probe-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", **login(bb, service))
    try:
        with pytest.raises(TopicAuthorizationFailedError):  # at start, or at the first fetch
            await consumer.start()
            await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()


async def test_a_service_principal_cannot_forge_or_read_what_is_not_its_own(backbone):
    since = datetime.now(UTC)
    await _cannot_write(backbone, "issuance", topics.DECISIONS)  # assessment's to decide
    await _cannot_read(backbone, "issuance", topics.RESULTS)
    await _cannot_write(backbone, "registry", topics.CREDENTIALS_ISSUED)  # issuance signs
    await _cannot_write(backbone, "notify", topics.CREDENTIAL_STATUS)

    # (The broker may refuse at the metadata step, as DESCRIBE, before any WRITE or READ.)
    wanted = {("service:issuance", f"topic {topics.DECISIONS}"),
              ("service:issuance", f"topic {topics.RESULTS}"),
              ("service:registry", f"topic {topics.CREDENTIALS_ISSUED}"),
              ("service:notify", f"topic {topics.CREDENTIAL_STATUS}")}
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        async def denials() -> set[tuple[str, str]]:
            out = await admin.call("GET", "/v1/admin/audit", expect=200, outcome="refused",
                                   since=since.isoformat(), limit=5000)
            return {(e["actor"], e["details"].get("resource", "")) for e in out["entries"]
                    if e["action"] == "kafka.acl-denied" and e["actor"].startswith("service:")}
        assert wanted <= await eventually(denials, lambda got: wanted <= got)
