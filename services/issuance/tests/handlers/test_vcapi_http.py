"""The VC-API issue endpoint in-process (the route, its dependencies and the problem
handlers, on a real database): no JSON-LD input ever gives a 5xx (issue 10)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from microcred_issuance.keys.domain import issuer_id
from microcred_shared.vc import proofs
from microcred_testkit import jsonld_fuzz

LAKESHORE = "lakeshore-college"


def issuer(world: Any) -> str:
    return issuer_id(world.base_url, LAKESHORE)


async def test_a_context_that_unsets_vocab_is_a_400_problem_or_signed_never_a_500(
        client: Any, world: Any) -> None:
    credential = {"@context": ["https://www.w3.org/ns/credentials/v2", {"@vocab": None}],
                  "type": ["VerifiableCredential"], "issuer": issuer(world),
                  "credentialSubject": {"id": "did:example:1", "name": "Ada"}}
    r = await client.post("/credentials/issue", json={"credential": credential})
    assert r.status_code in (201, 400), r.text
    if r.status_code == 400:
        assert r.headers["content-type"] == "application/problem+json"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_no_json_ld_input_makes_the_issue_endpoint_fail_with_a_5xx(
        client: Any, world: Any, data: st.DataObject) -> None:
    credential = data.draw(jsonld_fuzz.credentials(issuer(world)))
    options = data.draw(st.one_of(st.just({}), st.just({"cryptosuite": "eddsa-jcs-2022"})))
    r = await client.post("/credentials/issue",
                          json={"credential": credential, "options": options})
    assert r.status_code < 500, (credential, r.text)
    event(f"HTTP {r.status_code} {r.json().get('detail', '')[:40]}")  # --hypothesis-show-statistics
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json", r.text


def v1_credential(world: Any) -> dict[str, Any]:
    return {"@context": ["https://www.w3.org/2018/credentials/v1",
                         "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": {"id": issuer(world), "type": ["Profile"], "name": "Lakeshore College"},
            "credentialSubject": {"id": "did:example:learner-11", "type": ["AchievementSubject"],
                                  "achievement": {"id": "https://lakeshore.example/a/1",
                                                  "type": ["Achievement"], "name": "Lab safety",
                                                  "criteria": {"narrative": "Induction"}}}}


@pytest.mark.parametrize("suite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
async def test_a_vc_1_1_credential_is_issued_with_either_cryptosuite(
        client: Any, world: Any, suite: str) -> None:
    r = await client.post("/credentials/issue", json={
        "credential": v1_credential(world), "options": {"cryptosuite": suite}})
    assert r.status_code == 201, r.text
    vc = r.json()["verifiableCredential"]
    assert vc["proof"][0]["cryptosuite"] == suite
    # 1.1 names its issuing moment issuanceDate; status entries and the proof need the
    # status list and Data Integrity contexts that 1.1's own context lacks.
    assert "issuanceDate" in vc and "validFrom" not in vc
    assert vc["@context"][2:] == ["https://www.w3.org/ns/credentials/status/v1",
                                  "https://w3id.org/security/data-integrity/v2"]
    assert vc["credentialStatus"]["type"] == "BitstringStatusListEntry"
    key = world.keys.active(LAKESHORE).private.public_key()
    assert proofs.verify_proof_sync(vc, lambda _vm: key).ok


async def test_a_vc_1_1_credential_with_2_0_dates_or_a_bad_issuance_date_is_refused(
        client: Any, world: Any) -> None:
    bad = {**v1_credential(world), "issuanceDate": "yesterday"}
    r = await client.post("/credentials/issue", json={"credential": bad})
    assert r.status_code == 400 and "issuanceDate" in r.json()["detail"]
    v2 = {**v1_credential(world), "issuanceDate": "2026-01-01T00:00:00Z"}
    v2["@context"] = ["https://www.w3.org/ns/credentials/v2", *v2["@context"][1:]]
    r = await client.post("/credentials/issue", json={"credential": v2})
    assert r.status_code == 400 and "VC 1.1 terms" in r.json()["detail"]


async def test_related_resources_of_the_wrong_shape_are_refused_and_good_ones_signed(
        client: Any, world: Any) -> None:
    base = {"@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"], "issuer": issuer(world),
            "credentialSubject": {"id": "did:example:learner-12"}}
    sri = "sha256-" + "A" * 43 + "="
    for bad, reason in [
            (["https://example.org/a"], "one or more objects"),
            ([{"digestSRI": sri}], "id must be a URL"),
            ([{"id": "https://example.org/a", "digestSRI": sri},
              {"id": "https://example.org/a", "digestSRI": sri}], "appears twice"),
            ([{"id": "https://example.org/a"}], "needs a digestSRI or a digestMultibase"),
            ([{"id": "https://www.w3.org/ns/credentials/v2", "digestSRI": sri}],
             "does not match the resource")]:
        r = await client.post("/credentials/issue",
                              json={"credential": {**base, "relatedResource": bad}})
        assert r.status_code == 400, (bad, r.text)
        assert reason in r.json()["detail"], r.json()
    good = [{"id": "https://example.org/a", "digestSRI": sri}]
    r = await client.post("/credentials/issue",
                          json={"credential": {**base, "relatedResource": good}})
    assert r.status_code == 201, r.text
    assert r.json()["verifiableCredential"]["relatedResource"] == good


async def test_an_open_badge_that_breaks_the_ob_schema_is_refused_and_nothing_is_kept(
        client: Any, world: Any) -> None:
    badge = v1_credential(world)
    badge["@context"] = ["https://www.w3.org/ns/credentials/v2", badge["@context"][1]]
    badge["credentialSubject"] = [badge["credentialSubject"], badge["credentialSubject"]]
    r = await client.post("/credentials/issue", json={"credential": badge})
    assert r.status_code == 400, r.text
    assert "Open Badges 3.0 schema" in r.json()["detail"]
    assert await world.scalar("SELECT count(*) FROM issued_credentials") == 0
    assert await world.published() == []
