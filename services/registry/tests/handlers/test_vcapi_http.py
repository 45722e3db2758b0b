"""The VC-API verify endpoints in-process (routes, dependencies, problem handlers, on a real
database): no JSON-LD input ever gives a 5xx (issue 10). Nothing is fetched: a document
from elsewhere is 'unreachable' here."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from microcred_registry import deps
from microcred_registry.verification import fetch, routes
from microcred_shared import problems
from microcred_shared.vc import JCS, RDFC, VcError, did_key, private_key_from_seed, sign
from microcred_shared.vc.keys import did_key_verification_method
from microcred_testkit import jsonld_fuzz

BASE = "https://registry.test"
KEY = private_key_from_seed(bytes(range(32)))
ISSUER = did_key(KEY.public_key())
VM = did_key_verification_method(KEY.public_key())


def signed(**extra: Any) -> dict[str, Any]:
    return sign({"@context": ["https://www.w3.org/ns/credentials/v2"],
                 "type": ["VerifiableCredential"], "issuer": ISSUER,
                 "validFrom": "2026-01-01T00:00:00Z",
                 "credentialSubject": {"id": "did:example:1", "name": "Ada"}, **extra},
                KEY, VM)


@pytest.fixture
async def client(db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    async def unreachable(url: str, client: Any = None) -> dict[str, Any]:
        raise ValueError(f"{url} is not reachable from this test")

    monkeypatch.setattr(fetch, "remote_document", unreachable)
    api = FastAPI()
    problems.install(api)
    api.include_router(routes.router)
    api.dependency_overrides[deps._engine] = lambda: db.engine
    api.dependency_overrides[deps._base_url] = lambda: BASE
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        yield http


async def test_a_credential_signed_by_a_did_key_verifies_and_a_vocab_null_one_is_a_400(
        client: Any) -> None:
    r = await client.post("/credentials/verify", json={"verifiableCredential": signed()})
    assert r.status_code == 200 and r.json()["verified"] is True, r.text
    odd = signed()
    odd["@context"] = ["https://www.w3.org/ns/credentials/v2", {"@vocab": None}]
    r = await client.post("/credentials/verify", json={"verifiableCredential": odd})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    """A signed credential with one part replaced by something odd."""
    def mutate(key: str, value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(signed())
        if key.startswith("proof."):
            doc["proof"][key.split(".", 1)[1]] = value
        else:
            doc[key] = value
        return doc

    parts = st.sampled_from(["@context", "type", "issuer", "credentialSubject", "validFrom",
                             "validUntil", "credentialStatus", "relatedResource", "proof",
                             "proof.@context", "proof.cryptosuite", "proof.proofValue",
                             "proof.verificationMethod", "proof.previousProof",
                             "proof.created", "proof.id", "proof.proofPurpose"])
    return st.builds(mutate, parts, st.one_of(jsonld_fuzz.contexts, jsonld_fuzz.json_values()))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_no_json_ld_input_makes_the_verify_endpoint_fail_with_a_5xx(
        client: Any, data: st.DataObject) -> None:
    doc = data.draw(st.one_of(_mutations(), jsonld_fuzz.credentials(ISSUER).map(
        lambda c: {**c, "proof": signed()["proof"]})))
    r = await client.post("/credentials/verify", json={"verifiableCredential": doc})
    assert r.status_code < 500, (doc, r.text)
    event(f"HTTP {r.status_code} {r.json().get('detail', '')[:40]}")  # --hypothesis-show-statistics


HOLDER = private_key_from_seed(bytes([8] * 32))


def presented(challenge: str = "c-1", cryptosuite: str = RDFC, **vp: Any) -> dict[str, Any]:
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2"],
           "type": ["VerifiablePresentation"], "holder": did_key(HOLDER.public_key()),
           "verifiableCredential": [signed()], **vp}
    return sign(doc, HOLDER, did_key_verification_method(HOLDER.public_key()),
                proof_purpose="authentication", challenge=challenge, domain="v.example",
                cryptosuite=cryptosuite)


async def test_a_presentation_is_verified_with_its_challenge_domain_and_credentials(
        client: Any) -> None:
    options = {"challenge": "c-1", "domain": "v.example"}
    r = await client.post("/presentations/verify",
                          json={"verifiablePresentation": presented(), "options": options})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verified"] is True and body["credentialResults"][0]["verified"] is True
    assert {c["check"] for c in body["checks"]} >= {"proof", "holder_key", "challenge",
                                                    "domain"}

    r = await client.post("/presentations/verify", json={
        "verifiablePresentation": presented("c-0"), "options": options})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert "challenge" in r.json()["detail"]
    for bad in [{}, {"verifiablePresentation": "x"},
                {"verifiablePresentation": presented(), "options": {"challenge": 5}}]:
        r = await client.post("/presentations/verify", json=bad)
        assert r.status_code == 400, bad


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_no_json_ld_input_makes_the_presentation_endpoint_fail_with_a_5xx(
        client: Any, data: st.DataObject) -> None:
    if data.draw(st.booleans()):  # a holder-signed presentation of an odd credential
        inner = data.draw(st.one_of(_mutations(), jsonld_fuzz.credentials(ISSUER)))
        try:  # jcs: signable whatever the JSON-LD in it, when its values are portable
            vp = presented(verifiableCredential=[inner], cryptosuite=JCS)
        except VcError:
            vp = {**presented(), "verifiableCredential": [inner]}
    else:  # an odd presentation around a good credential
        vp = {**presented(), "@context": data.draw(jsonld_fuzz.contexts),
              **data.draw(st.dictionaries(jsonld_fuzz.keys, jsonld_fuzz.json_values(4),
                                          max_size=2))}
    r = await client.post("/presentations/verify",
                          json={"verifiablePresentation": vp, "options": {"challenge": "c-1"}})
    assert r.status_code < 500, (vp, r.text)
