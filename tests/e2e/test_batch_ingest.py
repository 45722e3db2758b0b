"""HTTP batches on the real backbone (issue 12, item 2): a partner posts many results in one
request and each passing learner gets one signed, registered credential and one mail;
sending the same batch again (a retry after a timeout) doubles nothing; a key acts only
for its own provider; over 1,000 results is refused whole."""

from __future__ import annotations

import pytest

from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result

pytestmark = pytest.mark.integration
BATCH = "/v1/assessment-results:batch"


async def post_batch(bb, provider: str, results: list) -> tuple[int, dict]:
    body = '{"results": [' + ",".join(r.model_dump_json() for r in results) + "]}"
    async with bb.http("assessment", bb.api_keys[provider]) as client:
        r = await client.post(BATCH, content=body, headers={"content-type": "application/json"})
    return r.status_code, r.json()


async def registered(bb, emails: list[str]) -> dict[str, list[dict]]:
    async with bb.http("registry", bb.operator_token) as client:
        out = {}
        for email in emails:
            r = await client.get(f"/v1/learners/{learner_key(email)}/credentials")
            assert r.status_code == 200, r.text
            out[email] = r.json()["credentials"]
        return out


async def test_a_batch_becomes_one_credential_and_one_mail_per_learner_even_sent_twice(
        backbone):
    provider = "coast-mountain-university"
    people = [learner(f"batch-{i}") for i in range(12)]
    passing = [result(provider, "cmu-sustainable-forestry", who=p, rubric_level="exemplary")
               for p in people[:10]]
    failing = [result(provider, "cmu-sustainable-forestry", who=p, rubric_level="beginning")
               for p in people[10:]]
    forged = result("lakeshore-college", "lakeshore-workplace-safety", passed=True,
                    who=learner("batch-forged"))
    status, first = await post_batch(backbone, provider, [*passing, *failing, forged])
    assert status == 200, first
    assert (first["accepted"], first["duplicates"], first["refused"]) == (12, 0, 1)
    assert first["outcomes"][-1]["problem"]["status"] == 403

    # The partner's retry after a lost answer: the same batch, all duplicates.
    status, again = await post_batch(backbone, provider, [*passing, *failing])
    assert status == 200
    assert (again["accepted"], again["duplicates"]) == (0, 12)

    emails = [p.email for p in people]
    # A mail is sent once the credential is registered (bounded below pytest's timeout).
    mails = await eventually(lambda: _mails(backbone, emails[:10]),
                             lambda m: all(len(v) >= 1 for v in m.values()), timeout=200)
    assert all(mails.values()), {e: len(m) for e, m in mails.items()}
    creds = await registered(backbone, emails[:10])
    assert all(len(v) == 1 for v in creds.values()), creds
    # Decided and counted: each passing result twice, one credential and one mail each.
    async with backbone.http("assessment", backbone.api_keys[provider]) as client:
        statuses = [(await client.get(o["status_url"])).json() for o in first["outcomes"][:12]]
    assert [s["status"] for s in statuses] == ["decided"] * 12
    assert [s["achieved"] for s in statuses] == [True] * 10 + [False] * 2
    assert {s["submissions"] for s in statuses} == {2}
    assert all(len(v) == 1 for v in mails.values())
    nothing = await registered(backbone, [*emails[10:], "learnerbatch-forged@learners.example"])
    assert all(v == [] for v in nothing.values())
    assert all(len(backbone.smtp.to(e)) == 1 for e in emails[:10])  # still one, later


async def _mails(bb, emails):
    return {e: bb.smtp.to(e) for e in emails}


async def test_a_batch_over_1000_results_is_refused_and_nothing_of_it_is_stored(backbone):
    provider = "lakeshore-college"
    results = [result(provider, "lakeshore-workplace-safety", passed=True,
                      who=learner(f"too-many-{i}")) for i in range(1001)]
    status, problem = await post_batch(backbone, provider, results)
    assert status == 413
    assert problem["type"].endswith("/batch-too-large") and "1000" in problem["detail"]
    rows = await backbone.scalar(
        "assessment", "SELECT count(*) FROM ingested_results WHERE result_id = ANY($1)",
        [r.result_id for r in results])
    assert rows == 0


async def test_a_result_published_over_kafka_then_posted_is_one_credential_counted_twice(
        backbone):
    """A partner that publishes a result over Kafka and then posts it (or a retry by the
    other way): decided at the door or by the consumer, it is decided once (one credential,
    one mail) and counted twice; over HTTP it reads decided as soon as it is answered."""
    provider = "coast-mountain-university"
    who = learner("both-ways")
    res = result(provider, "cmu-sustainable-forestry", who=who, rubric_level="exemplary")
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish(res)
    async with backbone.http("assessment", backbone.api_keys[provider]) as client:
        path = f"/v1/assessment-results/{res.result_id}"
        await eventually(lambda: client.get(path),
                         lambda r: r.json()["status"] == "decided", timeout=60)
        answer = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                   headers={"content-type": "application/json"})
        assert answer.status_code == 202
        status = (await client.get(path)).json()
        assert (status["status"], status["submissions"]) == ("decided", 2)
        # Posted first, a new result reads decided in the answer's wake, not pending.
        new = result(provider, "cmu-sustainable-forestry", who=learner("both-ways-2"),
                     rubric_level="exemplary")
        posted = await client.post("/v1/assessment-results", content=new.model_dump_json(),
                                   headers={"content-type": "application/json"})
        assert posted.status_code == 202
        now = (await client.get(posted.json()["status_url"])).json()
        assert (now["status"], now["submissions"]) == ("decided", 1)
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish(new)
    mails = await eventually(lambda: _mails(backbone, [who.email, new.learner.email]),
                             lambda m: all(len(v) >= 1 for v in m.values()), timeout=120)
    creds = await registered(backbone, [who.email, new.learner.email])
    assert all(len(v) == 1 for v in creds.values()), creds
    async with backbone.http("assessment", backbone.api_keys[provider]) as client:
        later = await eventually(lambda: client.get(posted.json()["status_url"]),
                                 lambda r: r.json()["submissions"] >= 2, timeout=60)
    assert later.json()["submissions"] == 2
    assert all(len(backbone.smtp.to(e)) == 1 for e in mails)
