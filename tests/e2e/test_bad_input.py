"""Bad input gets a clear error and loses nothing else."""

from __future__ import annotations

import asyncio
import json

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
PROBLEM = "application/problem+json"


async def post(bb, body, token):
    async with bb.http("assessment", token) as client:
        return await client.post("/v1/assessment-results", content=body,
                                 headers={"content-type": "application/json"})


async def test_http_ingest_answers_bad_requests_with_problem_details(backbone):
    key = backbone.api_keys["lakeshore-college"]
    good = result("lakeshore-college", "lakeshore-data-analytics-fundamentals", score=80)

    broken = await post(backbone, b"{not json", key)
    assert broken.status_code == 400 and broken.headers["content-type"] == PROBLEM
    assert broken.json()["status"] == 400

    missing = json.loads(good.model_dump_json())
    del missing["learner"]
    r = await post(backbone, json.dumps(missing), key)
    assert r.status_code == 400
    assert any(e["pointer"] == "/learner" for e in r.json()["errors"])

    out_of_range = good.model_copy(update={"score": 140})
    r = await post(backbone, out_of_range.model_dump_json(), key)
    assert r.status_code == 422 and "outside 0..100" in r.json()["detail"]

    foreign = result("lakeshore-college", "cmu-sustainable-forestry", rubric_level="exemplary")
    r = await post(backbone, foreign.model_dump_json(), key)
    assert r.status_code == 422 and "another provider" in r.json()["detail"]

    impersonation = result("coast-mountain-university", "cmu-sustainable-forestry",
                           rubric_level="exemplary")
    r = await post(backbone, impersonation.model_dump_json(), key)
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM

    for token in (None, "mcp_nope.nope", key + "x"):
        r = await post(backbone, good.model_dump_json(), token)
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


async def test_poison_records_on_kafka_are_dead_lettered_with_a_reason_and_the_stream_goes_on(
        backbone):
    eve = learner("eve-poison")
    valid = result("lakeshore-college", "lakeshore-workplace-safety", who=eve, passed=True)
    tagged = f"poison-{eve.id}"
    forged = result("coast-mountain-university", "cmu-sustainable-forestry", who=eve,
                    rubric_level="exemplary", result_id=tagged + "-forged")
    foreign_def = result("lakeshore-college", "cegep-soins-premiers-secours", who=eve, score=99,
                         result_id=tagged + "-foreign")
    headers = provider_headers(valid)
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish_raw(b"\x00\xffnot json", headers, key=tagged.encode())
        await kafka.publish_raw(encode(valid), [("content-type", b"application/json")],
                                key=tagged.encode())
        bad_payload = json.loads(valid.model_dump_json()) | {"score": "lots"}
        await kafka.publish_raw(json.dumps(bad_payload).encode(),
                                provider_headers(valid), key=tagged.encode())
        # A provider publishing as another provider: ce_source says who sent it.
        await kafka.publish(forged, source="/providers/lakeshore-college")
        await kafka.publish(foreign_def)
        await kafka.publish(valid)

    async with backbone.http("registry", backbone.operator_token) as client:
        creds = await eventually(
            lambda: _get(client, f"/v1/learners/{learner_key(eve.email)}/credentials"),
            lambda body: body["count"] >= 1)
    assert [c["title"] for c in creds["credentials"]] == ["Workplace Health and Safety Awareness"]

    found = await eventually(lambda: _dead_letters(backbone, eve),
                             lambda ls: len({h["dlq_id"] for h in ls}) >= 5, timeout=60)
    # Dead letters are published at least once; each carries a stable id for its record.
    letters = list({h["dlq_id"]: h for h in found}.values())
    reasons = [h["dlq_reason"] for h in letters]
    assert len(letters) == 5, "\n".join(reasons)
    assert any("invalid AssessmentResultSubmitted payload" in r and "score" in r for r in reasons)
    assert any("missing CloudEvents header" in r for r in reasons)
    assert any("may not publish results for provider" in r for r in reasons)
    assert any("belongs to another provider" in r for r in reasons)
    assert all(h["dlq_topic"] == topics.RESULTS for h in letters)


async def _get(client, path):
    response = await client.get(path)
    return response.json()


async def _dead_letters(bb, who) -> list[dict[str, str]]:
    """Dead letters about `who` (matched on the original bytes, kept verbatim)."""
    found = [{k: v.decode(errors="replace") for k, v in rec.headers}
             for rec in await records_on(bb, topics.dlq(topics.RESULTS))
             if who.email.encode() in (rec.value or b"")
             or (rec.key or b"").startswith(b"poison-" + who.id.encode())]
    await asyncio.sleep(0)
    return found
