"""HTTP ingest in batches and by group commit (issue 12, item 2): the real assessment app in
process on the test's database. A batch answers one outcome per result (accepted,
duplicate, or refused with the problem its own request would get); the same batch twice is
duplicates and decides nothing twice; a key acts only for its own provider; over 1,000
results is refused whole. What is accepted is read back from the outbox, and decided by
the service's own Kafka handler, as it would be after the relay published it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from microcred_assessment.results import handlers
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_testkit.backbone import learner, result

SKEW = timedelta(minutes=5)
PROVIDER = "lakeshore-college"
SCORED = (PROVIDER, "lakeshore-data-analytics-fundamentals")
BATCH = "/v1/assessment-results:batch"


def body(*results: Any) -> dict[str, Any]:
    return {"results": [json.loads(r.model_dump_json()) if isinstance(
        r, AssessmentResultSubmitted) else r for r in results]}


async def decide_published(kit: Any, live: Any) -> None:
    """What the relay would publish on topics.RESULTS, through assessment's consumer."""
    async with kit.engine.connect() as conn:
        import sqlalchemy as sa

        rows = (await conn.execute(sa.text(
            "SELECT headers, payload FROM outbox WHERE topic = :t ORDER BY id"),
            {"t": topics.RESULTS})).all()
    records = [kit.record(topics.RESULTS, AssessmentResultSubmitted.model_validate_json(p),
                          [(k, v.encode()) for k, v in json.loads(h)]) for h, p in rows]
    await kit.consume(partial(handlers.on_results, live=live, skew=SKEW),
                      AssessmentResultSubmitted, records)


async def test_a_batch_answers_one_outcome_per_result_in_order(app, kit):
    client, rt = app
    good = result(*SCORED, score=80)
    other_good = result(PROVIDER, "lakeshore-workplace-safety", passed=True)
    lax = json.loads(result(*SCORED, score=80).model_dump_json()) | {"score": "80"}
    unknown = result(PROVIDER, "no-such-definition", score=80)
    forged = result("coast-mountain-university", "cmu-sustainable-forestry",
                    rubric_level="proficient")
    r = await client.post(BATCH, json=body(good, lax, unknown, forged, "not a result",
                                           other_good))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["accepted"], answer["duplicates"], answer["refused"]) == (2, 0, 4)
    got = answer["outcomes"]
    assert [o["index"] for o in got] == [0, 1, 2, 3, 4, 5]
    assert [o["outcome"] for o in got] == ["accepted", "refused", "refused", "refused",
                                           "refused", "accepted"]
    assert got[0]["result_id"] == good.result_id and got[0]["event_id"]
    assert got[0]["assessment_id"] == str(handlers.assessment_id_for(PROVIDER, good.result_id))
    assert got[0]["status_url"].endswith(f"/v1/assessment-results/{good.result_id}")
    # The problem each would have got alone: 400 does not parse, 422 cannot be judged,
    # 403 not this key's provider.
    assert got[1]["problem"]["status"] == 400
    assert got[1]["problem"]["errors"][0]["pointer"] == "/score"
    assert got[2]["problem"]["status"] == 422
    assert "unknown credential definition" in got[2]["problem"]["detail"]
    assert got[3]["problem"]["status"] == 403
    assert got[3]["problem"]["type"].endswith("/forbidden")
    assert got[4]["problem"]["status"] == 400 and got[4]["result_id"] is None
    # Only the accepted ones go out, in the batch's order, sent as lakeshore.
    published = await kit.outbox(topics.RESULTS)
    assert [p.body["result_id"] for p in published] == [good.result_id, other_good.result_id]
    assert {p.headers["ce_source"] for p in published} == {f"/providers/{PROVIDER}"}
    assert [p.headers["ce_id"] for p in published] == [got[0]["event_id"], got[5]["event_id"]]
    # The forged one is in the audit log, as a single forged submission is.
    [entry] = await kit.audit("result.forged-provider")
    assert entry["channel"] == "http" and entry["actor"] == f"provider:{PROVIDER}"
    assert rt.relay.wakes >= 1


async def test_a_key_cannot_submit_a_batch_for_another_provider(app, kit):
    client, _ = app
    theirs = [result("coast-mountain-university", "cmu-sustainable-forestry",
                     rubric_level="proficient") for _ in range(3)]
    r = await client.post(BATCH, json=body(*theirs))
    assert r.status_code == 200
    assert [o["problem"]["status"] for o in r.json()["outcomes"]] == [403, 403, 403]
    assert await kit.outbox(topics.RESULTS) == []
    assert len(await kit.audit("result.forged-provider")) == 3


async def test_the_same_batch_twice_is_duplicates_and_decides_nothing_twice(app, kit, live):
    client, _ = app
    batch = body(*[result(*SCORED, score=70 + i, who=learner(f"twice-{i}")) for i in range(5)])
    first = await client.post(BATCH, json=batch)
    again = await client.post(BATCH, json=batch)
    assert first.json()["accepted"] == 5
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 5)
    # A duplicate names the event its first submission got.
    assert [o["event_id"] for o in again.json()["outcomes"]] == \
        [o["event_id"] for o in first.json()["outcomes"]]
    await decide_published(kit, live)
    decided = await kit.outbox(topics.DECISIONS)
    assert len(decided) == 5  # one decision per result, not per submission
    rows = await kit.rows("SELECT submissions FROM results")
    assert sorted(r["submissions"] for r in rows) == [2] * 5  # each counted twice


async def test_within_one_batch_a_repeat_is_a_duplicate_and_other_content_a_conflict(app, kit):
    client, _ = app
    res = result(*SCORED, score=90)
    changed = res.model_copy(update={"score": 10.0})
    r = await client.post(BATCH, json=body(res, res, changed))
    got = r.json()["outcomes"]
    assert [o["outcome"] for o in got] == ["accepted", "duplicate", "refused"]
    assert got[2]["problem"]["status"] == 409
    assert got[0]["event_id"] in got[2]["problem"]["detail"]
    published = await kit.outbox(topics.RESULTS)
    assert [p.body["score"] for p in published] == [90.0, 90.0]  # never the changed one


async def test_a_single_resubmission_says_duplicate_and_other_content_is_a_409(app, kit):
    client, _ = app
    res = result(*SCORED, score=75)
    path = "/v1/assessment-results"
    first = await client.post(path, content=res.model_dump_json(),
                              headers={"content-type": "application/json"})
    again = await client.post(path, content=res.model_dump_json(),
                              headers={"content-type": "application/json"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert (first.json()["outcome"], again.json()["outcome"]) == ("accepted", "duplicate")
    assert again.json()["event_id"] == first.json()["event_id"]
    other = await client.post(path, content=res.model_copy(update={"score": 99.0})
                              .model_dump_json(), headers={"content-type": "application/json"})
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert len(await kit.outbox(topics.RESULTS)) == 2


@pytest.mark.parametrize("size", [1001, 0])
async def test_a_batch_over_the_limit_or_empty_is_refused_whole(app, kit, size):
    client, _ = app
    batch = body(*[result(*SCORED, score=80) for _ in range(size)])
    r = await client.post(BATCH, json=batch)
    assert r.status_code == (413 if size else 400)
    assert r.headers["content-type"] == "application/problem+json"
    assert await kit.outbox(topics.RESULTS) == []
    assert await kit.rows("SELECT * FROM ingested_results") == []


async def test_concurrent_requests_share_transactions_and_each_gets_its_answer(app, kit):
    client, rt = app
    results = [result(*SCORED, score=80, who=learner(f"group-{i}")) for i in range(40)]

    async def send(res: AssessmentResultSubmitted) -> httpx.Response:
        return await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                 headers={"content-type": "application/json"})

    answers = await asyncio.gather(*(send(r) for r in results))
    assert [a.status_code for a in answers] == [202] * 40
    published = {p.headers["ce_id"]: p.body["result_id"]
                 for p in await kit.outbox(topics.RESULTS)}
    # Every answer names the event that carries its own result.
    assert {published[a.json()["event_id"]] for a in answers} == \
        {r.result_id for r in results}
    assert rt.ingest.stored == 40 and rt.ingest.flushes < 40


async def test_a_suspended_provider_and_a_revoked_key_are_refused_at_once(app, kit, live):
    from microcred_assessment.access.keys import revoke_key
    from microcred_assessment.catalogue import handlers as catalogue

    client, rt = app
    async with kit.engine.begin() as conn:
        await catalogue.set_status(conn, PROVIDER, "suspended", "accreditation under review",
                                   "operator")
    await live.refresh()  # what the admin route's poke does on this instance
    r = await client.post(BATCH, json=body(result(*SCORED, score=80)))
    [refused] = r.json()["outcomes"]
    assert refused["problem"]["status"] == 403
    assert "suspended: accreditation under review" in refused["problem"]["detail"]
    assert await kit.outbox(topics.RESULTS) == []

    key_id = client.headers["authorization"].split()[1][4:].split(".")[0]
    assert await revoke_key(kit.engine, key_id)
    rt.key_verifier.forget()  # what the admin route does on this instance
    r = await client.post(BATCH, json=body(result(*SCORED, score=80)))
    assert r.status_code == 401


class _Statements:
    """Every statement the engine's connections send to PostgreSQL: the engine's own
    (prepared by the driver), and what the driver sends by itself (transaction control and
    connection checks, which its query logger sees)."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self.sent: list[str] = []
        self._watched: set[int] = set()
        sa.event.listen(engine.sync_engine.pool, "checkout", self._watch)
        sa.event.listen(engine.sync_engine, "before_cursor_execute",
                        lambda conn, cursor, sql, *rest: self.sent.append(sql))

    def _watch(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = dbapi_connection.driver_connection  # the asyncpg connection
        if id(raw) not in self._watched:
            self._watched.add(id(raw))
            raw.add_query_logger(lambda q: self.sent.append(q.query))


async def test_one_result_per_request_costs_one_statement_per_flush(app, kit):
    """Issue 12: a submission used to run a connection check (BEGIN, ping, ROLLBACK) and a
    transaction (BEGIN, ledger, outbox, COMMIT) per flush, plus a read-only transaction for
    the API key. Now a flush is one statement, and a verified key is not looked up again."""
    client, rt = app
    statements = _Statements(kit.engine)

    async def send(res: AssessmentResultSubmitted) -> httpx.Response:
        return await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                 headers={"content-type": "application/json"})

    first = await send(result(*SCORED, score=80, who=learner("warm")))
    assert first.status_code == 202
    statements.sent.clear()
    flushes = rt.ingest.flushes
    one = await send(result(*SCORED, score=81, who=learner("alone")))
    assert one.status_code == 202 and one.json()["outcome"] == "accepted"
    assert len(statements.sent) == 1 and "ingested_results" in statements.sent[0], \
        statements.sent
    statements.sent.clear()
    answers = await asyncio.gather(*(send(result(*SCORED, score=80, who=learner(f"c-{i}")))
                                     for i in range(30)))
    assert [a.status_code for a in answers] == [202] * 30
    flushed = rt.ingest.flushes - flushes - 1
    assert 1 <= flushed < 30
    assert len(statements.sent) == flushed, statements.sent
    assert all("ingested_results" in s for s in statements.sent)
    # What each statement wrote is there, committed: the outbox holds all 32 results.
    assert len(await kit.outbox(topics.RESULTS)) == 32


async def test_the_status_url_follows_the_host_each_request_came_by(app):
    """The status URL's base is remembered per Host (issue 12: it was rebuilt on every
    request), so a request by another name gets its own."""
    client, _ = app

    async def status_url(host: str | None = None) -> str:
        res = result(*SCORED, score=80, who=learner("host"))
        headers = {"content-type": "application/json", **({"host": host} if host else {})}
        answer = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                   headers=headers)
        assert answer.status_code == 202
        return str(answer.json()["status_url"])

    assert (await status_url()).startswith("http://a/v1/assessment-results/")
    assert (await status_url("ingest.example")).startswith(
        "http://ingest.example/v1/assessment-results/")
    assert (await status_url()).startswith("http://a/v1/assessment-results/")
