"""Operators see one trace per assessment, across all four services."""

from __future__ import annotations

import pytest

from microcred_testkit.backbone import eventually, learner, result

pytestmark = pytest.mark.integration
SERVICES = {"microcred-assessment", "microcred-issuance", "microcred-registry",
            "microcred-notify"}


async def test_one_submitted_result_is_one_trace_with_spans_from_all_four_services(backbone):
    res = result("coast-mountain-university", "cmu-sustainable-forestry",
                 who=learner("tracy-trace"), rubric_level="proficient")
    async with backbone.http("assessment", backbone.api_keys[res.provider_id]) as client:
        response = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 202
    trace_id = response.json()["trace_id"]

    async def spans():
        return backbone.otlp.trace(trace_id)

    found = await eventually(spans, lambda s: SERVICES <= {x["service"] for x in s} and any(
        x["name"] == "notify send email" for x in s), timeout=60)
    assert SERVICES <= {s["service"] for s in found}
    names = {s["name"] for s in found}
    assert "notify send email" in names
    assert any(n.endswith(" process") for n in names)
    # Database spans say what they did: the ingest flush writes the ledger, the decision and
    # the outbox in one statement (ADR 40), not the driver's `BEGIN;`.
    assert any("INSERT outbox" in n.split(", ") for n in names), sorted(names)
    assert not names & {"BEGIN;", ";", "COMMIT;"}, sorted(names)
    # Every span hangs off another span of the same trace, back to the HTTP request.
    ids = {s["span_id"] for s in found}
    roots = [s for s in found if not s["parent"]]
    assert len(roots) == 1 and roots[0]["service"] == "microcred-assessment"
    assert all(s["parent"] in ids for s in found if s["parent"]), "a span's parent is missing"
