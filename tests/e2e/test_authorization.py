"""Who may publish what, on the real broker and database: over HTTP (API keys) and over
Kafka (SASL/SCRAM principals, ACLs), a forged provider, another provider's definition, a
suspended provider and wrong, revoked or rotated credentials are each refused, audited, and
nothing is issued for them. A control result sent last for the same learner proves that the
refused ones were processed (same learner key: same partition, in order)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from microcred_shared.contract import topics
from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import eventually, learner, result
from microcred_testkit.providers import Admin, SaslPublisher, definition_doc

pytestmark = pytest.mark.integration


def tag() -> str:
    return uuid.uuid4().hex[:6]


async def submit(bb, key: str | None, res):
    async with bb.http("assessment", key) as client:
        return await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                 headers={"content-type": "application/json"})


async def titles_of(bb, email: str, at_least: int) -> list[str]:
    async with bb.http("registry", bb.operator_token) as client:
        async def probe():
            return (await client.get(f"/v1/learners/{learner_key(email)}/credentials")).json()
        body = await eventually(probe, lambda b: b["count"] >= at_least)
    return [c["title"] for c in body["credentials"]]


async def audited(admin: Admin, provider: str, action: str, count: int = 1) -> list[dict]:
    entries = await eventually(lambda: admin.audit(provider, outcome="refused"),
                               lambda es: sum(e["action"] == action for e in es) >= count)
    return [e for e in entries if e["action"] == action]


async def two_providers(admin: Admin, prefix: str) -> tuple[str, str, str, str, str, str]:
    """(a, a's key, a's definition, b, b's key, b's definition)."""
    a, b = f"{prefix}-a-{tag()}", f"{prefix}-b-{tag()}"
    da, db = f"{a}-def", f"{b}-def"
    ka, kb = await admin.onboard(a), await admin.onboard(b)
    await admin.call("POST", "/v1/admin/definitions", definition_doc(da, a, title="Alpha"), 201)
    await admin.call("POST", "/v1/admin/definitions", definition_doc(db, b, title="Beta"), 201)
    return a, ka, da, b, kb, db


async def test_over_http_every_unauthorised_submission_is_refused_audited_and_issues_nothing(
        backbone):
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        a, ka, da, b, kb, db = await two_providers(admin, "http")
        who = learner(f"http-matrix-{tag()}")

        forged = await submit(backbone, ka, result(b, db, who=who, passed=True))
        assert forged.status_code == 403
        foreign = await submit(backbone, ka, result(a, db, who=who, passed=True))
        assert foreign.status_code == 422 and "not co-issued" in foreign.json()["detail"]

        wrong = await submit(backbone, ka + "x", result(a, da, who=who, passed=True))
        rotated = await admin.call(
            "POST", f"/v1/admin/providers/{a}/api-keys/{ka[4:].split('.')[0]}/rotate",
            expect=201)
        old_key_after_rotation = await submit(backbone, ka, result(a, da, who=who, passed=True))
        new_b = await admin.call("POST", f"/v1/admin/providers/{b}/api-keys", expect=201)
        await admin.call("DELETE", f"/v1/admin/providers/{b}/api-keys/{kb[4:].split('.')[0]}",
                         expect=200)
        revoked = await submit(backbone, kb, result(b, db, who=who, passed=True))
        assert [r.status_code for r in (wrong, old_key_after_rotation, revoked)] == [401] * 3

        await admin.call("POST", f"/v1/admin/providers/{b}/suspend",
                         {"reason": "quality review pending"}, 200)
        suspended = await submit(backbone, new_b["api_key"],
                                 result(b, db, who=who, passed=True))
        assert suspended.status_code == 403
        assert "quality review pending" in suspended.json()["detail"]

        control = await submit(backbone, rotated["api_key"], result(a, da, who=who,
                                                                   passed=True))
        assert control.status_code == 202
        assert await titles_of(backbone, who.email, 1) == ["Alpha"]

        assert (await audited(admin, b, "result.forged-provider"))[0]["actor"] == \
            f"provider:{a}"
        assert await audited(admin, a, "result.foreign-definition")
        assert await audited(admin, b, "result.provider-suspended")
        auth = [e["reason"] for e in await audited(admin, a, "auth.api-key", 2)]
        assert any("wrong secret" in r for r in auth) and any("revoked" in r for r in auth)
        assert any("revoked" in e["reason"] for e in await audited(admin, b, "auth.api-key"))


async def test_a_provider_reads_only_its_own_definitions_and_cannot_revoke_anothers_credential(
        backbone):
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        a, ka, da, b, kb, db = await two_providers(admin, "read")
        async with backbone.http("assessment", ka) as client:
            mine = (await client.get("/v1/provider/definitions")).json()
            other = await client.get(f"/v1/provider/definitions/{db}")
            admin_with_key = await client.get("/v1/admin/providers")
        assert [d["id"] for d in mine["definitions"]] == [da]
        assert other.status_code == 403 and admin_with_key.status_code == 401
        assert await audited(admin, a, "read.foreign-definition")
        assert await audited(admin, a, "auth.operator")

        who = learner(f"revoke-other-{tag()}")
        assert (await submit(backbone, kb, result(b, db, who=who, passed=True))
                ).status_code == 202
        async with backbone.http("registry", backbone.operator_token) as client:
            body = await eventually(lambda: _json(client.get(
                f"/v1/learners/{learner_key(who.email)}/credentials")), lambda x: x["count"])
        cid = body["credentials"][0]["id"]
        async with backbone.http("issuance", ka) as client:
            r = await client.post(f"/v1/credentials/{cid}/status",
                                  json={"action": "revoke", "reason": "not mine to revoke"})
        assert r.status_code == 403
        (entry,) = await audited(admin, a, "credential.revoke")
        assert entry["service"] == "issuance" and cid in entry["reason"]


async def _json(request):
    return (await request).json()


async def principal(admin: Admin, provider: str, action: str = "") -> dict:
    path = f"/v1/admin/providers/{provider}/kafka-principal" + (f"/{action}" if action else "")
    return await admin.call("POST", path, expect=201)


async def test_over_kafka_sasl_each_principal_writes_only_its_own_results(backbone):
    boot = backbone.sasl_bootstrap
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        a, _, da, b, _, db = await two_providers(admin, "sasl")
        pa, pb = await principal(admin, a), await principal(admin, b)
        assert pa["topic"] == topics.provider_results(a) and "password" in pa
        who = learner(f"sasl-matrix-{tag()}")

        async with SaslPublisher(boot, pa["username"], pa["password"], pa["topic"]) as kafka:
            # Forged: on a's own topic, the record claims to come from b (and says so).
            await kafka.publish(result(b, db, who=who, passed=True), source=f"/providers/{b}")
            await kafka.publish(result(a, db, who=who, passed=True))  # b's definition
            for elsewhere in (pb["topic"], topics.RESULTS):  # the broker's ACLs say no
                with pytest.raises(TopicAuthorizationFailedError):
                    await kafka.publish(result(a, da, who=who, passed=True), topic=elsewhere)
        (forged,) = await audited(admin, b, "result.forged-provider")
        assert await audited(admin, a, "result.foreign-definition")

        with pytest.raises(KafkaError):
            async with SaslPublisher(boot, pa["username"], "wrong-password", pa["topic"]):
                pass
        rotated = await principal(admin, a, "rotate")
        with pytest.raises(KafkaConnectionError):
            async with SaslPublisher(boot, pa["username"], pa["password"], pa["topic"]):
                pass
        await admin.call("DELETE", f"/v1/admin/providers/{b}/kafka-principal", expect=200)
        with pytest.raises(KafkaConnectionError):
            async with SaslPublisher(boot, pb["username"], pb["password"], pb["topic"]):
                pass

        await admin.call("POST", f"/v1/admin/providers/{a}/suspend",
                         {"reason": "contract ended"}, 200)
        async with SaslPublisher(boot, rotated["username"], rotated["password"],
                                 rotated["topic"]) as kafka:
            await kafka.publish(result(a, da, who=who, passed=True))
            (held,) = await audited(admin, a, "result.provider-suspended")
            await admin.call("POST", f"/v1/admin/providers/{a}/reactivate",
                             {"reason": "contract renewed"}, 200)
            await kafka.publish(result(a, da, who=who, passed=True))  # the control result

        assert await titles_of(backbone, who.email, 1) == ["Alpha"]
        assert forged["actor"] == f"provider:{a}" and forged["channel"] == "kafka"
        assert forged["details"]["topic"] == pa["topic"]
        assert "contract ended" in held["reason"]
        # The broker's own refusals reach the same audit log, attributed to the provider.
        denied = await audited(admin, a, "kafka.acl-denied", count=2)
        assert {e["details"]["resource"] for e in denied} >= {
            f"topic {pb['topic']}", f"topic {topics.RESULTS}"}
        assert all(e["actor"] == f"provider:{a}" and e["service"] == "kafka-broker"
                   for e in denied)
        logins = await audited(admin, a, "kafka.authentication", count=2)
        assert {e["details"]["principal_state"] for e in logins} == {"active", "rotated"}
        assert all(e["details"]["username"] == pa["username"] for e in logins)
        (revoked,) = await audited(admin, b, "kafka.authentication")
        assert revoked["details"]["principal_state"] == "revoked"
        assert "revoked" in revoked["reason"]
        for entry in [*denied, *logins, revoked]:  # no secret ever reaches the log
            assert pa["password"] not in str(entry) and "wrong-password" not in str(entry)
