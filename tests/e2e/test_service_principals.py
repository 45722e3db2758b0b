"""The services log in to Kafka as their own principals `svc-<service>` on the SASL
listener, and each principal may do only what its service needs (ADR 19): the backbone
works end to end that way, a service's credentials cannot forge another service's events
or read what it does not consume, and every such refusal reaches the audit log. The services'
listener has no re-authentication limit, so their sessions last, while a provider's listener
still cuts a rotated-away session within the limit (ADR 21)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from microcred_devstack.kafka_sasl import PROVIDER_REAUTH_MS
from microcred_devstack.service_principals import service_password
from microcred_shared.contract import topics
from microcred_shared.contract.events import learner_key
from microcred_shared.contract.topics import service_user
from microcred_testkit.backbone import eventually, learner, result
from microcred_testkit.providers import Admin, SaslPublisher, definition_doc

pytestmark = pytest.mark.integration
SERVICES = ("assessment", "issuance", "registry", "notify")


def login(bb, service: str) -> dict[str, str]:
    """The service's own SCRAM login, as the devstack keeps it (0600 file in the state dir)."""
    return {"bootstrap_servers": bb.services_bootstrap, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": service_user(service),
            "sasl_plain_password": service_password(bb.stack.state_dir, service)}


async def test_the_services_run_the_backbone_over_sasl_as_their_own_principals(backbone):
    for service in SERVICES:
        pid = backbone.stack.service(service, backbone.env).pid
        assert pid is not None, f"{service} is not running"
        env = psutil.Process(pid).environ()
        # Their own SCRAM listener only (ADR 21), not the providers' one nor the open one.
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == backbone.services_bootstrap
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


Socket = tuple[tuple[str, int], tuple[str, int]]  # (local, remote) address of one TCP session
HOLD = PROVIDER_REAUTH_MS / 1000 + 10  # longer than the providers' limit, with slack


def _sessions(pid: int, port: int) -> set[Socket]:
    """The established TCP sessions of process `pid` to the broker port `port`."""
    return {(tuple(c.laddr), tuple(c.raddr))
            for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.raddr and c.raddr[1] == port and c.status == psutil.CONN_ESTABLISHED}


async def _publish_until_refused(kafka: SaslPublisher, make, interval: float = 2.0) -> float:
    """Publish every `interval` s until the broker refuses; return when it first did."""
    while True:
        try:
            await kafka.publish(make())
        except KafkaError:
            return time.monotonic()
        await asyncio.sleep(interval)


async def test_service_sessions_last_while_a_rotated_providers_session_is_cut(backbone):
    kafka = backbone.stack.kafka
    assert kafka is not None and kafka.services_port and kafka.sasl_port
    pids = {s: backbone.stack.service(s, backbone.env).pid for s in SERVICES}
    assert None not in pids.values(), pids
    # Each service's consumers fetch all the time: a session limit would end their sessions.
    held = {s: _sessions(pid, kafka.services_port) for s, pid in pids.items()}
    assert all(held.values()), f"a service holds no session on its listener: {held}"
    start = time.monotonic()

    since = datetime.now(UTC)
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        provider = f"reauth-{uuid.uuid4().hex[:6]}"
        await admin.onboard(provider)
        await admin.call("POST", "/v1/admin/definitions",
                         definition_doc(f"{provider}-def", provider, title="Reauth"), 201)
        p = await admin.call("POST", f"/v1/admin/providers/{provider}/kafka-principal",
                             expect=201)
        who = learner(f"reauth-{uuid.uuid4().hex[:6]}")

        def make():
            return result(provider, f"{provider}-def", who=who, passed=True)

        # A provider may not use the services' listener, where no limit would cut it.
        async with SaslPublisher(backbone.services_bootstrap, p["username"], p["password"],
                                 p["topic"]) as elsewhere:
            with pytest.raises(TopicAuthorizationFailedError):
                await elsewhere.publish(make())

        async with SaslPublisher(backbone.sasl_bootstrap, p["username"], p["password"],
                                 p["topic"]) as old:
            await old.publish(make())  # an authenticated session, before the rotation
            old_sessions = _sessions(os.getpid(), kafka.sasl_port)
            assert old_sessions
            await admin.call("POST", f"/v1/admin/providers/{provider}/kafka-principal/rotate",
                             expect=201)
            rotated = time.monotonic()
            refused = asyncio.create_task(_publish_until_refused(old, make))
            await asyncio.sleep(max(0.0, HOLD - (time.monotonic() - start)))
            still = {s: _sessions(pid, kafka.services_port) for s, pid in pids.items()}
            provider_now = _sessions(os.getpid(), kafka.sasl_port)
            cut_at = await asyncio.wait_for(refused, timeout=30)

        # The rotated-away session ended within the providers' limit (plus a send's retries).
        assert cut_at - rotated <= PROVIDER_REAUTH_MS / 1000 + 15, cut_at - rotated
        assert not old_sessions & provider_now, "the rotated-away session is still open"
        # No service lost a session in more than the providers' limit.
        assert time.monotonic() - start >= HOLD
        lost = {s: f"{len(held[s] - still[s])} of {len(held[s])}" for s in SERVICES
                if held[s] - still[s]}
        assert not lost, f"sessions of services on their listener were cut: {lost}"

        async def denials() -> list[dict]:
            out = await admin.call("GET", "/v1/admin/audit", expect=200, outcome="refused",
                                   since=since.isoformat(), limit=5000)
            return [e for e in out["entries"] if e["action"] == "kafka.acl-denied"
                    and e["actor"] == f"provider:{provider}"
                    and e["details"].get("listener") == "SERVICES"]
        entries = await eventually(denials, bool)
        assert entries and "only service principals" in entries[0]["reason"]
