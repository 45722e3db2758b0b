"""Credentials that verify anywhere: status changes by the issuer, key rotation, VC-API."""

from __future__ import annotations

import copy

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import eventually, learner, result

pytestmark = pytest.mark.integration


async def issued(bb, provider, definition, who, **outcome) -> dict:
    res = result(provider, definition, who=who, **outcome)
    async with bb.http("assessment", bb.api_keys[provider]) as client:
        r = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                              headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text
    async with bb.http("registry", bb.operator_token) as client:
        body = await eventually(
            lambda: _json(client.get(f"/v1/learners/{learner_key(who.email)}/credentials")),
            lambda b: b["count"] >= 1)
    return body["credentials"][-1]


async def verification(bb, cred) -> dict:
    """As the issuer reads it: new credentials are private (ADR 9)."""
    async with bb.http("registry", bb.api_keys[cred["provider"]]) as client:
        r = await client.get(f"/v1/credentials/{cred['id']}/verification")
    assert r.status_code == 200, r.text
    return r.json()


async def change(bb, provider, credential_id, action, reason="issued in error"):
    async with bb.http("issuance", bb.api_keys[provider]) as client:
        return await client.post(f"/v1/credentials/{credential_id}/status",
                                 json={"action": action, "reason": reason})


async def _json(request):
    return (await request).json()


async def test_a_fresh_credential_verifies_with_every_check_passing(backbone):
    cred = await issued(backbone, "lakeshore-college", "lakeshore-workplace-safety",
                        learner("vera-valid"), passed=True)
    v = await verification(backbone, cred)
    assert v["verified"] is True and v["status"] == "valid", v["problems"]
    assert {c["check"] for c in v["checks"]} >= {"proof", "issuer_key", "status", "schema"}


async def test_the_issuer_revokes_and_every_verification_then_says_revoked(backbone):
    rita = learner("rita-revoked")
    cred = await issued(backbone, "coast-mountain-university", "cmu-sustainable-forestry",
                        rita, rubric_level="proficient")
    other = await change(backbone, "lakeshore-college", cred["id"], "revoke")
    assert other.status_code == 403
    assert (await verification(backbone, cred))["status"] == "valid"

    r = await change(backbone, "coast-mountain-university", cred["id"], "revoke")
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    v = await eventually(lambda: verification(backbone, cred),
                         lambda v: v["status"] != "valid")
    assert v["status"] == "revoked" and v["verified"] is False
    assert any("revocation bit" in p for p in v["problems"])
    again = await change(backbone, "coast-mountain-university", cred["id"], "unsuspend")
    assert again.status_code == 409
    mails = await eventually(lambda: _mails(backbone, rita.email), lambda m: len(m) >= 2)
    assert "was revoked" in mails[-1]["Subject"]
    assert "issued in error" in mails[-1].get_content()


async def _mails(bb, email):
    return bb.smtp.to(email)


async def test_suspension_and_reinstatement_round_trip(backbone):
    """A suspendable definition's credential (ADR 8; deploy/seed marks this one)."""
    ocsc = "ontario-construction-sector-council"
    cred = await issued(backbone, ocsc, "ocsc-site-supervisor-readiness",
                        learner("sam-suspended"), passed=True)
    assert (await change(backbone, ocsc, cred["id"], "suspend")).status_code == 200
    v = await eventually(lambda: verification(backbone, cred),
                         lambda v: v["status"] == "suspended")
    assert v["status"] == "suspended" and not v["verified"]
    assert (await change(backbone, ocsc, cred["id"], "unsuspend")).status_code == 200
    v = await eventually(lambda: verification(backbone, cred),
                         lambda v: v["status"] == "valid")
    assert v["verified"] is True


async def test_a_tampered_credential_fails_verification_with_a_reason(backbone):
    cred = await issued(backbone, "lakeshore-college", "lakeshore-workplace-safety",
                        learner("tom-tamper"), passed=True)
    doc = copy.deepcopy(cred["credential"])
    doc["credentialSubject"]["name"] = "Someone Else"
    async with backbone.http("registry") as client:
        r = await client.post("/credentials/verify", json={"verifiableCredential": doc})
        ok = await client.post("/credentials/verify",
                               json={"verifiableCredential": cred["credential"]})
    assert ok.status_code == 200 and ok.json()["verified"] is True
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert "signature does not match" in r.json()["detail"]


async def test_key_rotation_keeps_old_credentials_valid_and_signs_new_ones_with_the_new_key(
        backbone):
    provider = "ontario-construction-sector-council"
    old = await issued(backbone, provider, "ocsc-site-supervisor-readiness",
                       learner("olga-old-key"), passed=True)
    async with backbone.http("issuance", backbone.operator_token) as client:
        r = await client.post(f"/v1/admin/providers/{provider}/keys/rotate", json={})
    assert r.status_code == 200, r.text
    new = await issued(backbone, provider, "ocsc-site-supervisor-readiness",
                       learner("nina-new-key"), passed=True)
    new_vm = new["credential"]["proof"][0]["verificationMethod"]
    assert new_vm.endswith("#" + r.json()["active_key"])
    assert old["credential"]["proof"][0]["verificationMethod"] != \
        new["credential"]["proof"][0]["verificationMethod"]
    for cred in (old, new):
        v = await eventually(lambda c=cred: verification(backbone, c),
                             lambda v: v["verified"])
        assert v["verified"] is True, v["problems"]

    # The new key leaks: retire it as compromised. What it signed stops verifying, with the
    # reason; what the earlier, merely retired key signed stays valid.
    async with backbone.http("issuance", backbone.operator_token) as client:
        r = await client.post(f"/v1/admin/providers/{provider}/keys/rotate",
                              json={"compromised": True})
    assert r.status_code == 200
    v = await eventually(lambda: verification(backbone, new), lambda v: not v["verified"])
    # The DID document drops a compromised key (ADR 22): wallets' verifiers ignore `revoked`.
    assert not v["verified"] and any("compromised" in p for p in v["problems"]), v
    assert (await verification(backbone, old))["verified"] is True


async def test_vc_api_issues_for_an_authorised_provider_and_refuses_what_vc_2_forbids(backbone):
    provider = "cegep-riviere-du-nord"
    issuer = backbone.issuer_did(provider)
    credential = {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "Atelier de secourisme",
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Cégep de la Rivière-du-Nord"},
        "credentialSubject": {
            "id": "did:example:learner-1", "type": ["AchievementSubject"],
            "achievement": {"id": "https://cegep-riviere.example/achievements/atelier",
                            "type": ["Achievement"], "name": "Atelier de secourisme",
                            "description": "Atelier pratique", "criteria": {
                                "narrative": "Présence et démonstration"}}},
    }
    async with backbone.http("issuance", backbone.api_keys[provider]) as client:
        r = await client.post("/credentials/issue", json={"credential": credential})
        assert r.status_code == 201, r.text
        vc = r.json()["verifiableCredential"]
        assert vc["proof"][0]["cryptosuite"] == "eddsa-rdfc-2022"
        assert vc["credentialStatus"]["type"] == "BitstringStatusListEntry"

        bad = {
            "empty subject": {**credential, "credentialSubject": {}},
            "validUntil before validFrom": {**credential, "validFrom": "2026-01-02T00:00:00Z",
                                            "validUntil": "2026-01-01T00:00:00Z"},
            "credentialSchema without type": {**credential, "credentialSchema": {
                "id": "https://example.org/schema.json"}},
            "evidence without type": {**credential, "evidence": [{"id": "https://e.example"}]},
            "termsOfUse without type": {**credential, "termsOfUse": {"id": "https://t.x"}},
            "refreshService without type": {**credential, "refreshService": {
                "id": "https://r.example"}},
            "non-URL credentialStatus id": {**credential, "credentialStatus": {
                "id": "not a url", "type": "BitstringStatusListEntry"}},
            "credentialStatus without type": {**credential, "credentialStatus": {
                "id": "https://s.example/1"}},
            "no VerifiableCredential type": {**credential, "type": ["Credential"]},
        }
        for name, body in bad.items():
            r = await client.post("/credentials/issue", json={"credential": body})
            assert r.status_code == 400, name
            assert r.headers["content-type"] == "application/problem+json", name
        foreign = {**credential, "issuer": backbone.issuer_did("lakeshore-college")}
        r = await client.post("/credentials/issue", json={"credential": foreign})
        assert r.status_code == 403

    async with backbone.http("registry") as client:
        r = await eventually(lambda: client.post("/credentials/verify",
                                                 json={"verifiableCredential": vc}),
                             lambda r: r.status_code == 200, timeout=30)
    assert r.status_code == 200, r.text
