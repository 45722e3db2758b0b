"""Audit: records from other services are stored once; a refusal inside the broker becomes
an entry naming the provider whose principal it was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from microcred_assessment.access import handlers as access
from microcred_assessment.audit import handlers as audit
from microcred_shared.audit import audit_event
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import new_envelope
from microcred_shared.contract.events_providers import AuditRecorded, BrokerRefusalObserved


def headers(event, source):
    return new_envelope(event, source).headers()


async def test_an_audit_record_from_another_service_is_stored_once(kit):
    event = audit_event("registry", channel="http", actor="unknown", provider_id=None,
                        action="auth.learner", reason="bad link", outcome="refused")
    for _ in range(2):  # republished: a new ce_id, the same audit id
        rec = kit.record(topics.AUDIT, event, headers(event, "/microcred/registry"))
        await kit.consume(audit.on_audit, AuditRecorded, [rec])
    [entry] = await kit.audit("auth.learner")
    assert entry["service"] == "registry" and entry["reason"] == "bad link"


async def test_a_broker_refusal_names_the_provider_and_what_became_of_its_principal(kit):
    async with kit.engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO kafka_principals (provider_id, username, topic, created_at, "
            "revoked_at) VALUES ('lakeshore-college', 'provider-lakeshore-college', 't', "
            "now() - interval '2 days', now() - interval '1 day')")
    refusal = BrokerRefusalObserved(
        refusal_id=uuid.uuid4(), observed_at=datetime.now(UTC) - timedelta(hours=1),
        kind="authentication-failed", mechanism="SCRAM-SHA-512",
        username="provider-lakeshore-college")
    handler = partial(audit.on_broker_refusals, principals=access.principals_by_username)
    rec = kit.record(topics.KAFKA_REFUSALS, refusal,
                     headers(refusal, "/microcred/kafka-broker"))
    await kit.consume(handler, BrokerRefusalObserved, [rec])
    [entry] = await kit.audit("kafka.authentication")
    assert entry["provider_id"] == "lakeshore-college"
    assert entry["details"]["principal_state"] == "revoked"
    assert "the principal was revoked at" in entry["reason"]
    [published] = await kit.outbox(topics.AUDIT)  # other services' operators see it too
    assert published.body["audit_id"] == str(refusal.refusal_id)


async def test_the_audit_query_filters_by_provider_and_outcome(kit):
    async with kit.engine.begin() as conn:
        await audit.record(conn, channel="http", actor="unknown", provider_id="p1",
                           action="auth.api-key", reason="unknown API key id")
        await audit.record(conn, channel="admin", actor="operator", provider_id="p1",
                           action="provider.update", reason="updated", outcome="changed")
        await audit.record(conn, channel="http", actor="unknown", provider_id="p2",
                           action="auth.api-key", reason="unknown API key id")
    async with kit.engine.connect() as conn:
        refused = await audit.query(conn, provider="p1", since=None, outcome="refused",
                                    limit=10)
    assert [e["action"] for e in refused] == ["auth.api-key"]
    assert isinstance(refused[0]["audit_id"], str)
