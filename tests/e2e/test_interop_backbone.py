"""The reference JavaScript verifier (@digitalbazaar/vc, from tests/interop/node_modules)
checks credentials the running backbone issued — both cryptosuites, status included —
using only documents the registry serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import eventually, learner, result
from microcred_testkit.js_verifier import js_verify
from microcred_testkit.served import served_documents as served

pytestmark = [pytest.mark.integration, pytest.mark.interop]
INTEROP = Path(__file__).resolve().parents[1] / "interop"




async def served_documents(bb, credential: dict) -> dict:
    async with bb.http("registry") as client:
        return await served(client, credential, bb.public_base_url)


async def test_the_reference_verifier_accepts_backbone_credentials_and_sees_revocation(
        backbone, tmp_path):
    who = learner("jules-js")
    res = result("lakeshore-college", "lakeshore-data-analytics-fundamentals", who=who,
                 score=93)
    async with backbone.http("assessment", backbone.api_keys[res.provider_id]) as client:
        assert (await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                  headers={"content-type": "application/json"})
                ).status_code == 202
    async with backbone.http("registry", backbone.operator_token) as client:
        body = await eventually(lambda: _json(client.get(
            f"/v1/learners/{learner_key(who.email)}/credentials")), lambda b: b["count"] >= 1)
    rdfc = body["credentials"][0]["credential"]
    assert rdfc["proof"][0]["cryptosuite"] == "eddsa-rdfc-2022"

    issuer = backbone.issuer_did("lakeshore-college")
    async with backbone.http("issuance", backbone.api_keys["lakeshore-college"]) as client:
        r = await client.post("/credentials/issue", json={"options": {
            "cryptosuite": "eddsa-jcs-2022"}, "credential": {
            "@context": ["https://www.w3.org/ns/credentials/v2",
                         "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "type": ["VerifiableCredential", "OpenBadgeCredential"], "name": "Lab safety",
            "issuer": {"id": issuer, "type": ["Profile"], "name": "Lakeshore College"},
            "credentialSubject": {"type": ["AchievementSubject"], "achievement": {
                "id": "https://lakeshore-college.example/a/lab", "type": ["Achievement"],
                "name": "Lab safety", "description": "Lab safety basics",
                "criteria": {"narrative": "Completed the lab induction"}}}}})
    assert r.status_code == 201, r.text
    jcs = r.json()["verifiableCredential"]

    docs = await served_documents(backbone, rdfc)
    docs |= await served_documents(backbone, jcs)
    verdicts = js_verify([rdfc, jcs], docs, tmp_path)
    assert [v["verified"] for v in verdicts] == [True, True], verdicts
    # One status entry (ADR 8: the definition is not suspendable): revocation only.
    assert verdicts[0]["status"] == {"revocation": False}

    cid = body["credentials"][0]["id"]
    async with backbone.http("issuance", backbone.api_keys["lakeshore-college"]) as client:
        r = await client.post(f"/v1/credentials/{cid}/status",
                              json={"action": "revoke", "reason": "assessment was voided"})
    assert r.status_code == 200
    # New credentials are private (ADR 9): the issuer reads its verification.
    async with backbone.http("registry", backbone.api_keys["lakeshore-college"]) as client:
        await eventually(lambda: _json(client.get(f"/v1/credentials/{cid}/verification")),
                         lambda v: v["status"] == "revoked")
    after = js_verify([rdfc], await served_documents(backbone, rdfc), tmp_path)[0]
    assert after["status"]["revocation"] is True, after


async def _json(request):
    return (await request).json()
