"""Strict input, checked at the door (issue 13, items 2 and 6), on the real broker and
database: lax values, characters that cannot be signed or stored, and a ce_id reused for
another payload are refused where the provider hears it (a problem over HTTP; a dead letter
and an entry in its audit log over Kafka), never become credentials, and never take a valid
result down; NUL in any HTTP input of any service is a 4xx problem, not a 500."""

from __future__ import annotations

import json
import uuid

import pytest

from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode
from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import (
    ProviderPublisher,
    eventually,
    learner,
    provider_headers,
    records_on,
    result,
)

pytestmark = pytest.mark.integration
PROVIDER = "lakeshore-college"
PASS_FAIL = (PROVIDER, "lakeshore-workplace-safety")
SCORED = (PROVIDER, "lakeshore-data-analytics-fundamentals")


async def _credentials(bb, who) -> list[dict]:
    async with bb.http("registry", bb.operator_token) as client:
        r = await client.get(f"/v1/learners/{learner_key(who.email)}/credentials")
    return r.json()["credentials"]


async def _dead_letters(bb, tag: bytes) -> dict[str, dict[str, str]]:
    """Dead letters of records keyed with `tag`, by their stable dlq_id."""
    found: dict[str, dict[str, str]] = {}
    for rec in await records_on(bb, topics.dlq(topics.RESULTS)):
        if (rec.key or b"").startswith(tag):
            headers = {k: (v or b"").decode(errors="replace") for k, v in rec.headers}
            found[headers["dlq_id"]] = headers
    return found


async def test_hostile_results_on_kafka_are_refused_visibly_and_valid_ones_go_on(backbone):
    tag = f"strict-{uuid.uuid4().hex[:8]}"
    ana, bel, lax = learner(f"{tag}-ana"), learner(f"{tag}-bel"), learner(f"{tag}-lax")
    valid = result(*PASS_FAIL, who=ana, passed=True)
    valid_id = str(uuid.uuid4())
    reused = result(*SCORED, who=ana, score=95)  # the same ce_id, another payload
    unfit = result(*PASS_FAIL, who=bel.model_copy(update={"given_name": "Bel\x07\u202eadmin"}),
                   passed=True)
    lax_body = json.loads(result(*PASS_FAIL, who=lax, passed=True).model_dump_json())
    lax_body |= {"assessed_at": 12345, "passed": "yes"}
    key = (tag + "-").encode()
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish_raw(json.dumps(lax_body).encode(),
                                provider_headers(result(*PASS_FAIL, passed=True)), key=key)
        await kafka.publish_raw(encode(unfit), provider_headers(unfit), key=key + b"unfit")
        # One key, so one partition: the broker keeps these three in this order.
        headers = provider_headers(valid, event_id=valid_id)
        await kafka.publish_raw(encode(valid), headers, key=key + b"ana")
        await kafka.publish_raw(encode(valid), headers, key=key + b"ana")  # redelivery
        await kafka.publish_raw(encode(reused), provider_headers(reused, event_id=valid_id),
                                key=key + b"ana")

    creds = await eventually(lambda: _credentials(backbone, ana), lambda c: len(c) >= 1)
    assert [c["title"] for c in creds] == ["Workplace Health and Safety Awareness"]

    letters = await eventually(lambda: _dead_letters(backbone, key), lambda ls: len(ls) >= 3,
                               timeout=60)
    reasons = sorted(h["dlq_reason"] for h in letters.values())
    assert len(reasons) == 3, reasons  # the identical redelivery is not one of them
    assert any(r.startswith("invalid AssessmentResultSubmitted payload") and
               "assessed_at" in r and "passed" in r for r in reasons), reasons
    assert "learner.given_name: character U+0007 is not allowed in signed strings " \
        "(canonicalizers escape it differently)" in reasons
    assert f"ce_id '{valid_id}' was already used for a different payload; a new event " \
           "needs a new ce_id" in reasons

    # The provider reads the refusals in its own audit log.
    async with backbone.http("assessment", backbone.api_keys[PROVIDER]) as client:
        entries = (await client.get("/v1/provider/audit", params={"limit": 1000})).json()
    actions = {e["action"]: e for e in entries["entries"]
               if e["details"].get("ce_id") in (valid_id, None) or "U+0007" in e["reason"]}
    assert "U+0007" in actions["result.unfit-text"]["reason"]
    assert actions["result.conflicting-duplicate"]["details"]["ce_id"] == valid_id

    # Nothing of the refused ones was decided or issued; the valid one exactly once.
    assert await _credentials(backbone, bel) == [] and await _credentials(backbone, lax) == []
    assert await backbone.scalar(
        "assessment", "SELECT count(*) FROM results WHERE learner_key = ANY($1::text[])",
        [learner_key(bel.email), learner_key(lax.email)]) == 0
    assert len(await _credentials(backbone, ana)) == 1


async def test_http_ingest_refuses_lax_and_unfit_input_with_problems(backbone):
    key = backbone.api_keys[PROVIDER]
    good = json.loads(result(*PASS_FAIL, passed=True).model_dump_json())
    async with backbone.http("assessment", key) as client:
        for change, status, text in [
            ({"assessed_at": 12345}, 400, "/assessed_at"),
            ({"passed": "yes"}, 400, "/passed"),
            ({"learner": good["learner"] | {"given_name": "Ana\x00"}}, 422, "U+0000"),
            ({"learner": good["learner"] | {"family_name": "\x1b[31mRed"}}, 422, "U+001B"),
            ({"learner": good["learner"] | {"display_name": "\u202eanA"}}, 422, "U+202E"),
        ]:
            r = await client.post("/v1/assessment-results", json=good | change)
            assert r.status_code == status, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert text in r.text


@pytest.mark.parametrize(("service", "method", "path", "token"), [
    ("assessment", "GET", "/v1/assessment-results/r%00x", "provider"),
    ("assessment", "GET", "/v1/admin/audit?provider=x%00", "operator"),
    ("notify", "GET", "/v1/admin/deliveries?employer=x%00", "operator"),
    ("notify", "GET", "/v1/admin/employers?status=x%00", "operator"),
    ("registry", "GET", "/issuers/x%00y", None),
    ("issuance", "POST", "/v1/admin/providers/x%00/keys/rotate", "operator"),
])
async def test_nul_in_any_http_input_is_a_4xx_problem_on_the_running_services(
        backbone, service, method, path, token):
    bearer = {"provider": backbone.api_keys[PROVIDER], "operator": backbone.operator_token,
              None: None}[token]
    async with backbone.http(service, bearer) as client:
        r = await client.request(method, path)
        assert r.status_code == 400, r.text
        assert r.json()["type"].endswith("/unstorable-character")
        body = await client.post("/v1/employers" if service == "notify" else
                                 "/credentials/verify" if service == "registry" else
                                 "/credentials/issue" if service == "issuance" else
                                 "/v1/assessment-results",
                                 json={"name": "x\x00", "contact_email": "a@b.example"})
        assert body.status_code == 422 and "U+0000" in body.json()["detail"]
