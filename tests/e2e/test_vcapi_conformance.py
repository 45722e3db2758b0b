"""The VC-API behaviours of issue 10 on the running backbone: VC 1.1 credentials signed with
both cryptosuites and accepted by the reference JavaScript verifier; presentations verified
with their challenge, domain and credentials; a credential verifiable the moment
/credentials/issue answers even when it opened a new status list; credentials with several
subjects flowing through registry and notify; relatedResource rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from microcred_issuance.keys.domain import issuer_id
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events_learners import CredentialVisibilityChanged
from microcred_shared.vc import did_key, private_key_from_seed, sign
from microcred_shared.vc.keys import did_key_verification_method
from microcred_testkit.backbone import eventually
from microcred_testkit.js_verifier import js_verify
from microcred_testkit.providers import Admin
from microcred_testkit.served import served_documents as served

pytestmark = pytest.mark.integration
OB = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
HOLDER = private_key_from_seed(bytes([21] * 32))


INTEROP = Path(__file__).resolve().parents[1] / "interop"




async def served_documents(bb, credential: dict) -> dict:
    async with bb.http("registry") as client:
        return await served(client, credential, bb.public_base_url)


def issuer_of(bb, provider: str) -> str:
    """The issuer id a provider's key signs as (one place, should its form change)."""
    return issuer_id(bb.url("registry"), provider)


def achievement_credential(bb, provider: str, context: list[str], **extra) -> dict:
    return {"@context": context, "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": {"id": issuer_of(bb, provider), "type": ["Profile"], "name": provider},
            "credentialSubject": {"id": did_key(HOLDER.public_key()),
                                  "type": ["AchievementSubject"], "achievement": {
                                      "id": f"https://{provider}.example/a/first-aid",
                                      "type": ["Achievement"], "name": "First aid",
                                      "description": "First aid in care settings",
                                      "criteria": {"narrative": "Practical assessment"}}},
            **extra}


async def vc_api_issue(bb, provider: str, credential: dict, key: str | None = None,
                       **options) -> dict:
    async with bb.http("issuance", key or bb.api_keys[provider]) as client:
        r = await client.post("/credentials/issue",
                              json={"credential": credential, "options": options})
    assert r.status_code == 201, r.text
    return r.json()["verifiableCredential"]


async def registry_verify(bb, vc: dict):
    async with bb.http("registry") as client:
        return await client.post("/credentials/verify", json={"verifiableCredential": vc})


@pytest.mark.interop
@pytest.mark.parametrize("suite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
async def test_a_vc_1_1_credential_is_issued_and_the_reference_verifier_accepts_it(
        backbone, suite, tmp_path):
    provider = "cegep-riviere-du-nord"
    vc = await vc_api_issue(backbone, provider, achievement_credential(
        backbone, provider, ["https://www.w3.org/2018/credentials/v1", OB]), cryptosuite=suite)
    assert vc["proof"][0]["cryptosuite"] == suite and "issuanceDate" in vc
    docs = await served_documents(backbone, vc)
    [js] = js_verify([vc], docs, tmp_path)
    assert js == {"verified": True, "error": None,
                  "status": {"revocation": False}}, js  # one status entry (ADR 8)
    r = await registry_verify(backbone, vc)
    assert r.status_code == 200 and r.json()["status"] == "valid", r.text


async def test_a_holders_presentation_is_verified_with_its_challenge_and_credentials(backbone):
    provider = "lakeshore-college"
    vc = await vc_api_issue(backbone, provider, achievement_credential(
        backbone, provider, ["https://www.w3.org/ns/credentials/v2", OB]))
    challenge = str(uuid.uuid4())
    vp = sign({"@context": ["https://www.w3.org/ns/credentials/v2"],
               "type": ["VerifiablePresentation"], "holder": did_key(HOLDER.public_key()),
               "verifiableCredential": [vc]},
              HOLDER, did_key_verification_method(HOLDER.public_key()),
              proof_purpose="authentication", challenge=challenge, domain="employer.example")
    options = {"challenge": challenge, "domain": "employer.example"}
    async with backbone.http("registry") as client:
        ok = await client.post("/presentations/verify",
                               json={"verifiablePresentation": vp, "options": options})
        replay = await client.post("/presentations/verify", json={
            "verifiablePresentation": vp, "options": {**options, "challenge": "another"}})
        tampered = {**vp, "verifiableCredential": [
            {**vc, "name": "Something else"}]}
        bad = await client.post("/presentations/verify",
                                json={"verifiablePresentation": tampered, "options": options})
    assert ok.status_code == 200, ok.text
    assert ok.json()["credentialResults"][0]["status"] == "valid"
    assert replay.status_code == 400 and "challenge" in replay.json()["detail"]
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


async def test_a_credential_that_opens_a_new_status_list_verifies_the_moment_it_is_issued(
        backbone):
    provider = f"fresh-list-{uuid.uuid4().hex[:6]}"
    async with Admin(backbone.url("assessment"), backbone.operator_token) as admin:
        key = await admin.onboard(provider, kind="college", jurisdiction="CA-NS")
    async with backbone.http("registry") as client:  # onboarded: its issuer is served
        await eventually(lambda: client.get(f"/issuers/{provider}"),
                         lambda r: r.status_code == 200)

    async def issue() -> object:
        async with backbone.http("issuance", key) as client:
            return await client.post("/credentials/issue", json={"credential": {
                "@context": ["https://www.w3.org/ns/credentials/v2"],
                "type": ["VerifiableCredential"], "issuer": issuer_of(backbone, provider),
                "credentialSubject": {"id": "did:example:first-learner"}}})
    r = await eventually(issue, lambda r: r.status_code != 401)  # the key reaches issuance
    assert r.status_code == 201, r.text
    vc = r.json()["verifiableCredential"]
    # Its provider's very first credential: it opened list 0 of both purposes, which are
    # still on their way to the registry through Kafka as the answer arrives.
    assert vc["credentialStatus"]["statusListCredential"].endswith("/0")
    v = await registry_verify(backbone, vc)
    assert v.status_code == 200, v.text
    assert v.json()["status"] == "valid"


async def test_a_credential_with_several_subjects_is_stored_served_and_passes_notify(backbone):
    provider = "coast-mountain-university"
    subjects = [{"id": f"did:example:{n}", "type": ["AchievementSubject"],
                 "achievement": {"id": "https://cmu.example/a/team", "type": ["Achievement"],
                                 "name": "Team project", "description": "A team project",
                                 "criteria": {"narrative": "Delivered it as a team"}}}
                for n in ("ana", "ben")]
    credential = {"@context": ["https://www.w3.org/ns/credentials/v2", OB],
                  "type": ["VerifiableCredential"], "issuer": issuer_of(backbone, provider),
                  "name": "Team project", "credentialSubject": subjects}
    # An Open Badge has one AchievementSubject (its JSON Schema): refused, not signed.
    async with backbone.http("issuance", backbone.api_keys[provider]) as client:
        r = await client.post("/credentials/issue", json={"credential": {
            **credential, "type": ["VerifiableCredential", "OpenBadgeCredential"]}})
    assert r.status_code == 400 and "Open Badges 3.0 schema" in r.json()["detail"], r.text
    vc = await vc_api_issue(backbone, provider, credential)
    cid = vc["id"].removeprefix("urn:uuid:")
    # New credentials are private (ADR 9): the issuer reads it.
    async with backbone.http("registry", backbone.api_keys[provider]) as client:
        served = await eventually(
            lambda: client.get(f"/v1/credentials/{cid}",
                               headers={"accept": "application/vc+ld+json"}),
            lambda r: r.status_code == 200)
    assert served.json()["credentialSubject"] == vc["credentialSubject"]
    # Shown to employers, as the registry announces it (with the document, ADR 10): notify
    # applies it (no failed batch) and its employer view holds the document.
    holder = await backbone.scalar(
        "registry", "SELECT learner_key FROM credentials WHERE credential_id = $1",
        uuid.UUID(cid))
    event = CredentialVisibilityChanged(
        credential_id=uuid.UUID(cid), learner_key=holder, provider_id=provider,
        visibility="employers", changed_at=datetime.now(UTC), credential=served.json())
    producer = AIOKafkaProducer(bootstrap_servers=backbone.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.CREDENTIAL_VISIBILITY, encode(event), key=event.key(),
            headers=new_envelope(event, "/microcred/registry").headers())
    finally:
        await producer.stop()
    row = await eventually(lambda: backbone.scalar(
        "notify", "SELECT count(*) FROM employer_credential_view WHERE credential_id = $1 "
        "AND document IS NOT NULL", uuid.UUID(cid)), lambda n: n == 1)
    assert row == 1
    assert (await registry_verify(backbone, vc)).status_code == 200


async def test_related_resources_of_the_wrong_shape_are_refused_on_the_running_stack(backbone):
    provider = "lakeshore-college"
    base = {"@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"], "issuer": issuer_of(backbone, provider),
            "credentialSubject": {"id": "did:example:rr"}}
    async with backbone.http("issuance", backbone.api_keys[provider]) as client:
        for bad in (["https://example.org/a"], [{"id": "https://example.org/a"}],
                    {"id": "https://www.w3.org/ns/credentials/v2",
                     "digestSRI": "sha384-" + "A" * 64}):
            r = await client.post("/credentials/issue",
                                  json={"credential": {**base, "relatedResource": bad}})
            assert r.status_code == 400, (bad, r.text)
        r = await client.post("/credentials/issue", json={"credential": {
            **base, "@context": ["https://www.w3.org/ns/credentials/v2", {"@vocab": None}]}})
        assert r.status_code in (201, 400) and r.status_code != 500
