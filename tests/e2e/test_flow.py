"""The flow on the real broker: results in, signed credentials registered, learners mailed."""

from __future__ import annotations

import pytest

from microcred_shared.contract.events import learner_key
from microcred_shared.vc import contexts  # noqa: F401  (offline loader is importable)
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result

pytestmark = pytest.mark.integration


async def submit_http(bb, res) -> dict:
    async with bb.http("assessment", bb.api_keys[res.provider_id]) as client:
        response = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    return response.json()


async def learner_credentials(bb, email: str) -> list[dict]:
    async with bb.http("registry", bb.operator_token) as client:
        response = await client.get(f"/v1/learners/{learner_key(email)}/credentials")
    assert response.status_code == 200, response.text
    return response.json()["credentials"]


async def test_two_providers_in_two_provinces_issue_registered_credentials_and_mail_learners(
        backbone):
    ana = learner("ana-flow")
    # A mailbox with an accent (RFC 6531): the mail must still arrive, once.
    ben = learner("ben-flow", language="fr").model_copy(
        update={"email": "benoît.flow@learners.example"})
    on = result("lakeshore-college", "lakeshore-data-analytics-fundamentals", who=ana, score=91)
    bc = result("coast-mountain-university", "cmu-sustainable-forestry", who=ben,
                rubric_level="exemplary")
    await submit_http(backbone, on)
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish(bc)

    for who, province, provider in ((ana, "CA-ON", "lakeshore-college"),
                                    (ben, "CA-BC", "coast-mountain-university")):
        creds = await eventually(lambda w=who: learner_credentials(backbone, w.email),
                                 lambda c: len(c) >= 1)
        assert len(creds) == 1
        doc = creds[0]["credential"]
        assert doc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
        assert doc["issuer"]["address"]["addressRegion"] == province
        assert doc["issuer"]["id"] == backbone.issuer_did(provider)  # did:web (ADR 22)
        assert doc["proof"][0]["verificationMethod"].startswith(doc["issuer"]["id"] + "#")
        assert doc["@context"][-1] == f"{backbone.public_base_url}/contexts/microcred/v1"
        subject = doc["credentialSubject"]
        assert subject["achievement"]["achievementType"] == "MicroCredential"
        assert subject["name"] == who.full_name
        assert doc["proof"][0]["type"] == "DataIntegrityProof"  # OB 3.0: proof is an array
        # New credentials are private (ADR 9): its issuer reads it by id.
        async with backbone.http("registry", backbone.api_keys[provider]) as client:
            served = (await client.get(f"/v1/credentials/{creds[0]['id']}")).json()
        assert served == doc

        mails = await eventually(lambda w=who: _mails(backbone, w.email), lambda m: len(m) >= 1)
        assert len(mails) == 1
        assert creds[0]["url"] in mails[0].get_content()
    assert "Votre microcertification" in backbone.smtp.to(ben.email)[0]["Subject"]


async def _mails(bb, email):
    return bb.smtp.to(email)


async def test_a_result_below_the_pass_mark_is_decided_but_issues_nothing(backbone):
    carl = learner("carl-flow")
    low = result("lakeshore-college", "lakeshore-data-analytics-fundamentals", who=carl, score=40)
    ok = result("lakeshore-college", "lakeshore-workplace-safety", who=carl, passed=True)
    await submit_http(backbone, low)
    await submit_http(backbone, ok)
    creds = await eventually(lambda: learner_credentials(backbone, carl.email),
                             lambda c: len(c) >= 1)
    assert [c["title"] for c in creds] == ["Workplace Health and Safety Awareness"]
    async with backbone.http("assessment", backbone.api_keys["lakeshore-college"]) as client:
        status = (await client.get(f"/v1/assessment-results/{low.result_id}")).json()
    assert status["status"] == "decided" and status["achieved"] is False
    assert "below the pass mark" in status["reason"]


async def test_the_same_provider_result_submitted_twice_gives_one_credential(backbone):
    dee = learner("dee-dup")
    res = result("cegep-riviere-du-nord", "cegep-soins-premiers-secours", who=dee, score=95)
    await submit_http(backbone, res)
    await submit_http(backbone, res)  # a retry by the provider, new event id
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        ce_id = await kafka.publish(res)
        await kafka.publish(res, event_id=ce_id)  # and a broker-level redelivery
        # Three more copies in one burst, so that some share a consumer batch.
        await kafka.publish_many([res, res, res])
    async with backbone.http("assessment", backbone.api_keys[res.provider_id]) as client:
        status = await eventually(
            lambda: _json(client.get(f"/v1/assessment-results/{res.result_id}")),
            lambda s: s.get("submissions", 0) >= 6, timeout=120)
    # Every distinct submission is counted once; the exact redelivery is dropped.
    assert status["submissions"] == 6
    creds = await eventually(lambda: learner_credentials(backbone, dee.email),
                             lambda c: len(c) >= 1)
    mails = await eventually(lambda: _mails(backbone, dee.email), lambda m: len(m) >= 1)
    assert len(creds) == 1
    assert len(mails) == 1


async def test_a_steady_flow_writes_no_line_per_batch_in_the_services_logs(backbone):
    """An operator reads a service's log for what went wrong. FastStream wrote "Received"
    and "Processed" at INFO for every batch of every subscription, in its own colours
    whatever the service's log format: two lines per batch, most of each log (issue 12).
    Six credentials go through all four services; none of them leaves such a line."""
    services = ("assessment", "issuance", "registry", "notify")
    logs = {s: backbone.stack.log_dir / f"{s}.log" for s in services}
    before = {s: path.stat().st_size for s, path in logs.items()}
    people = [learner(f"quiet-log-{i}") for i in range(6)]
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        for who in people:  # one by one: each is a batch of its own at every hop
            await kafka.publish(result("lakeshore-college", "lakeshore-workplace-safety",
                                       who=who, passed=True))
    for who in people:
        await eventually(lambda w=who: _mails(backbone, w.email), lambda m: len(m) >= 1)
    written = {}
    for s, path in logs.items():
        with path.open("rb") as f:
            f.seek(before[s])
            written[s] = f.read().decode(errors="replace").splitlines()
    per_batch = {s: [line for line in lines if line.rstrip().endswith(("Received", "Processed"))]
                 for s, lines in written.items()}
    assert per_batch == {s: [] for s in services}, per_batch


async def _json(request):
    return (await request).json()
