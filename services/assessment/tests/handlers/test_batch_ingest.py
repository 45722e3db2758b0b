"""HTTP ingest in batches and by group commit (issue 12, item 2): the real assessment app in
process on the test's database. A batch answers one outcome per result (accepted,
duplicate, or refused with the problem its own request would get); the same batch twice is
duplicates and decides nothing twice; a key acts only for its own provider; over 1,000
results is refused whole. An accepted result is decided at the door (ADR 40): its
decision is in `results` and, the first time, its event for issuance in the outbox, when
the answer comes; the same result over Kafka and HTTP, either way first, is decided once
and counted twice."""

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
from microcred_testkit.backbone import learner, provider_headers, result

SKEW = timedelta(minutes=5)
PROVIDER = "lakeshore-college"
SCORED = (PROVIDER, "lakeshore-data-analytics-fundamentals")
BATCH = "/v1/assessment-results:batch"


def body(*results: Any) -> dict[str, Any]:
    return {"results": [json.loads(r.model_dump_json()) if isinstance(
        r, AssessmentResultSubmitted) else r for r in results]}


def provider_record(kit: Any, res: AssessmentResultSubmitted) -> Any:
    """`res` as its provider publishes it on topics.RESULTS."""
    return kit.record(topics.RESULTS, res, provider_headers(res))


async def decide_over_kafka(kit: Any, live: Any, *results: AssessmentResultSubmitted) -> None:
    """`results` as the provider publishes them, through assessment's Kafka consumer."""
    await kit.consume(partial(handlers.on_results, live=live, skew=SKEW),
                      AssessmentResultSubmitted, [provider_record(kit, r) for r in results])


async def submissions(kit: Any) -> dict[str, int]:
    return {r["result_id"]: r["submissions"]
            for r in await kit.rows("SELECT result_id, submissions FROM results")}


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
    # Only the accepted ones are decided, and go to issuance in the batch's order; nothing
    # is published on topics.RESULTS for this service's own consumer to decide again.
    assert await kit.outbox(topics.RESULTS) == []
    published = await kit.outbox(topics.DECISIONS)
    assert [p.body["result_id"] for p in published] == [good.result_id, other_good.result_id]
    assert [p.body["achieved"] for p in published] == [True, True]
    assert {p.headers["ce_source"] for p in published} == {"/microcred/assessment"}
    rows = {r["result_id"]: r for r in await kit.rows("SELECT * FROM results")}
    assert set(rows) == {good.result_id, other_good.result_id}
    assert rows[good.result_id]["ce_id"] == got[0]["event_id"]
    assert rows[good.result_id]["submissions"] == 1
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
    assert await kit.outbox(topics.DECISIONS) == []
    assert await kit.rows("SELECT * FROM results") == []
    assert len(await kit.audit("result.forged-provider")) == 3


async def test_the_same_batch_twice_is_duplicates_and_decides_nothing_twice(app, kit):
    client, _ = app
    batch = body(*[result(*SCORED, score=70 + i, who=learner(f"twice-{i}")) for i in range(5)])
    first = await client.post(BATCH, json=batch)
    again = await client.post(BATCH, json=batch)
    assert first.json()["accepted"] == 5
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 5)
    # A duplicate names the event its first submission got.
    assert [o["event_id"] for o in again.json()["outcomes"]] == \
        [o["event_id"] for o in first.json()["outcomes"]]
    decided = await kit.outbox(topics.DECISIONS)
    assert len(decided) == 5  # one decision per result, not per submission
    assert list((await submissions(kit)).values()) == [2] * 5  # each counted twice


async def test_within_one_batch_a_repeat_is_a_duplicate_and_other_content_a_conflict(app, kit):
    client, _ = app
    res = result(*SCORED, score=90)
    changed = res.model_copy(update={"score": 10.0})
    r = await client.post(BATCH, json=body(res, res, changed))
    got = r.json()["outcomes"]
    assert [o["outcome"] for o in got] == ["accepted", "duplicate", "refused"]
    assert got[2]["problem"]["status"] == 409
    assert got[0]["event_id"] in got[2]["problem"]["detail"]
    [decided] = await kit.outbox(topics.DECISIONS)
    assert decided.body["score"] == 90.0  # never the changed one
    assert await submissions(kit) == {res.result_id: 2}  # the conflict is not counted


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
    assert len(await kit.outbox(topics.DECISIONS)) == 1
    assert await submissions(kit) == {res.result_id: 2}


@pytest.mark.parametrize("size", [1001, 0])
async def test_a_batch_over_the_limit_or_empty_is_refused_whole(app, kit, size):
    client, _ = app
    batch = body(*[result(*SCORED, score=80) for _ in range(size)])
    r = await client.post(BATCH, json=batch)
    assert r.status_code == (413 if size else 400)
    assert r.headers["content-type"] == "application/problem+json"
    assert await kit.outbox(topics.DECISIONS) == []
    assert await kit.rows("SELECT * FROM ingested_results") == []
    assert await kit.rows("SELECT * FROM results") == []


async def test_concurrent_requests_share_transactions_and_each_gets_its_answer(app, kit):
    client, rt = app
    results = [result(*SCORED, score=80, who=learner(f"group-{i}")) for i in range(40)]

    async def send(res: AssessmentResultSubmitted) -> httpx.Response:
        return await client.post("/v1/assessment-results", content=res.model_dump_json(),
                                 headers={"content-type": "application/json"})

    answers = await asyncio.gather(*(send(r) for r in results))
    assert [a.status_code for a in answers] == [202] * 40
    decided = {r["ce_id"]: r["result_id"]
               for r in await kit.rows("SELECT ce_id, result_id FROM results")}
    # Every answer names the submission that decided its own result.
    assert {decided[a.json()["event_id"]] for a in answers} == {r.result_id for r in results}
    assert len(await kit.outbox(topics.DECISIONS)) == 40
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
    assert await kit.outbox(topics.DECISIONS) == []

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
    # What each statement wrote is there, committed: 32 decisions, in the outbox too.
    assert len(await kit.rows("SELECT * FROM results")) == 32
    assert len(await kit.outbox(topics.DECISIONS)) == 32


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


async def post_one(client: httpx.AsyncClient, res: AssessmentResultSubmitted,
                   ) -> httpx.Response:
    return await client.post("/v1/assessment-results", content=res.model_dump_json(),
                             headers={"content-type": "application/json"})


async def test_an_accepted_result_reads_decided_at_once_and_goes_to_issuance_once(app, kit):
    """ADR 40: the 202 comes once the result is decided, so its status URL says so at
    once (it used to read `pending` until the service's own consumer had decided it)."""
    client, _ = app
    res = result(*SCORED, score=40, who=learner("at-once"))
    answer = await post_one(client, res)
    assert answer.status_code == 202 and answer.json()["outcome"] == "accepted"
    status = (await client.get(answer.json()["status_url"])).json()
    assert (status["status"], status["achieved"], status["submissions"]) == \
        ("decided", False, 1)
    assert status["assessment_id"] == answer.json()["assessment_id"]
    assert "below the pass mark" in status["reason"]
    [decision] = await kit.outbox(topics.DECISIONS)
    assert decision.body["assessment_id"] == answer.json()["assessment_id"]
    assert decision.body["learner"]["email"] == res.learner.email
    assert decision.body["achieved"] is False


async def test_a_result_sent_over_kafka_then_http_is_decided_once_and_counted_twice(
        app, kit, live):
    client, _ = app
    res = result(*SCORED, score=85, who=learner("kafka-first"))
    await decide_over_kafka(kit, live, res)
    [first] = await kit.outbox(topics.DECISIONS)
    answer = await post_one(client, res)
    # New to HTTP ingest (its ledger), but known to the decision: counted, not redecided.
    assert answer.status_code == 202
    assert answer.json()["assessment_id"] == first.body["assessment_id"]
    assert len(await kit.outbox(topics.DECISIONS)) == 1
    status = (await client.get(answer.json()["status_url"])).json()
    assert (status["status"], status["submissions"]) == ("decided", 2)


async def test_a_result_sent_over_http_then_kafka_is_decided_once_and_counted_twice(
        app, kit, live):
    client, _ = app
    res = result(*SCORED, score=85, who=learner("http-first"))
    assert (await post_one(client, res)).status_code == 202
    await decide_over_kafka(kit, live, res)
    await decide_over_kafka(kit, live, res)  # a provider's retry: a new ce_id, counted
    assert len(await kit.outbox(topics.DECISIONS)) == 1
    assert await submissions(kit) == {res.result_id: 3}


async def test_a_batch_mixing_new_duplicate_conflicting_and_kafka_sent_results(app, kit, live):
    client, _ = app
    known = result(*SCORED, score=60, who=learner("mix-known"))
    over_kafka = result(*SCORED, score=61, who=learner("mix-kafka"))
    new = result(*SCORED, score=62, who=learner("mix-new"))
    assert (await post_one(client, known)).json()["outcome"] == "accepted"
    await decide_over_kafka(kit, live, over_kafka)
    assert len(await kit.outbox(topics.DECISIONS)) == 2
    changed = known.model_copy(update={"score": 99.0})
    r = await client.post(BATCH, json=body(new, known, changed, over_kafka, new))
    assert r.status_code == 200
    got = r.json()["outcomes"]
    assert [o["outcome"] for o in got] == ["accepted", "duplicate", "refused", "accepted",
                                           "duplicate"]
    assert got[2]["problem"]["status"] == 409
    assert got[4]["event_id"] == got[0]["event_id"]
    # One new decision (the new result's, once), each other result counted, not redecided.
    decided = await kit.outbox(topics.DECISIONS)
    assert [d.body["result_id"] for d in decided] == \
        [known.result_id, over_kafka.result_id, new.result_id]
    assert decided[2].body["score"] == 62.0
    assert await submissions(kit) == {known.result_id: 2, over_kafka.result_id: 2,
                                      new.result_id: 2}
    statuses = [(await client.get(o["status_url"])).json() for o in got if o.get("status_url")]
    assert {s["status"] for s in statuses} == {"decided"}


async def test_a_flush_and_a_consumer_batch_waiting_on_the_same_results_both_finish(
        app, kit, live):
    """The race that would deadlock if either side locked `results` rows in its own order:
    a third transaction holds result A (not yet committed); a consumer batch holding [B, A]
    and a flush of [A, B] (A before B in (provider, result id) order) both wait for it; it
    rolls back and both go on. Locking A first, neither holds B while it waits for A, so
    both finish whichever wins A (30 rounds: the winner is the lock manager's choice). A
    deadlock would fail the request (503) or the consumer batch; so would a unique index
    on `results` other than its primary key (the one ON CONFLICT handles): the later of
    two inserts of the same new result fails on it (migration 6 dropped the one on
    `assessment_id`)."""
    import sqlalchemy as sa

    client, _ = app
    waiting = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND wait_event_type = 'Lock'")
    for round_ in range(30):
        a, b = (result(*SCORED, score=70, who=learner(f"order-{round_}-{x}"))
                .model_copy(update={"result_id": f"order-{round_}-{x}"}) for x in "ab")
        async with kit.engine.connect() as holder:
            await holder.execute(sa.text(
                "INSERT INTO results (provider_id, result_id, assessment_id, definition_id, "
                "definition_version, learner_key, achieved, reason, submissions, ce_id, "
                "decided_at) VALUES (:p, :r, :a, :d, 1, 'k', true, 'held', 1, 'held', now())"),
                {"p": PROVIDER, "r": a.result_id, "d": SCORED[1],
                 "a": handlers.assessment_id_for(PROVIDER, a.result_id)})
            kafka = asyncio.ensure_future(decide_over_kafka(kit, live, b, a))
            http = asyncio.ensure_future(client.post(BATCH, json=body(a, b)))
            while True:  # pg_stat_activity is read once per transaction: a new one each
                async with kit.engine.connect() as watcher:
                    if (await watcher.execute(waiting)).scalar_one() >= 2:
                        break
                assert not kafka.done() and not http.done()
                await asyncio.sleep(0.01)
            await holder.rollback()
        await kafka
        answer = await http
        assert answer.status_code == 200, answer.text
        assert [o["outcome"] for o in answer.json()["outcomes"]] == ["accepted", "accepted"]
        counted = await submissions(kit)
        assert (counted[a.result_id], counted[b.result_id]) == (2, 2)
    assert len(await kit.outbox(topics.DECISIONS)) == 30 * 2


async def test_migration_6_leaves_results_one_unique_index(kit):
    """A database made before ADR 40 had a unique index on `results.assessment_id`."""
    import sqlalchemy as sa

    from microcred_assessment.results.models import drop_unique_assessment_id

    uniques = sa.text("SELECT count(*) FROM pg_index WHERE indrelid = 'results'::regclass "
                      "AND indisunique")
    async with kit.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE results ADD CONSTRAINT "
                                   "results_assessment_id_key UNIQUE (assessment_id)"))
        assert (await conn.execute(uniques)).scalar_one() == 2
        await drop_unique_assessment_id(conn)
        await drop_unique_assessment_id(conn)  # again: a no-op
        assert (await conn.execute(uniques)).scalar_one() == 1


async def test_migration_7_leaves_results_only_the_index_a_query_reads(kit):
    """Issue 12, wave 18: no query finds results by learner, so `results` keeps its primary
    key alone (every other test here decides on that schema); a database that has the
    learner's index loses it."""
    import sqlalchemy as sa

    from microcred_assessment.results.models import drop_unread_learner_index

    indexes = sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'results'")
    async with kit.engine.begin() as conn:
        assert set((await conn.execute(indexes)).scalars()) == {"results_pkey"}
        await conn.execute(sa.text("CREATE INDEX ix_results_learner_key ON results (learner_key)"))
        await drop_unread_learner_index(conn)
        await drop_unread_learner_index(conn)  # again: a no-op
        assert set((await conn.execute(indexes)).scalars()) == {"results_pkey"}


async def test_flushes_share_a_kept_connection_and_one_the_server_ended_is_not_used(app, kit):
    """Issue 12, wave 17: a flush takes the connection the one before it used instead of
    checking one out of the pool; one the database ended while it was kept (a restart, an
    operator, a failover) is not used: the next request is still answered 202 on a fresh
    connection. Stopping gives the kept connection back to the pool."""
    client, rt = app
    pool = kit.engine.sync_engine.pool
    for i in range(4):
        answer = await post_one(client, result(*SCORED, score=80, who=learner(f"kept-{i}")))
        assert answer.status_code == 202
    assert (rt.ingest.flushes, rt.ingest.checkouts) == (4, 1)
    assert pool.checkedout() == 1  # kept by the store between its flushes
    kept = rt.ingest._kept[-1][0]
    pid = (await kept.get_raw_connection()).driver_connection.get_server_pid()
    await kit.rows(f"SELECT pg_terminate_backend({pid})")
    for _ in range(500):  # the driver sees the server's goodbye when the loop reads it
        if kept.sync_connection.connection.driver_connection.is_closed():
            break
        await asyncio.sleep(0.01)
    answer = await post_one(client, result(*SCORED, score=80, who=learner("after-kill")))
    assert answer.status_code == 202 and answer.json()["outcome"] == "accepted"
    assert (rt.ingest.flushes, rt.ingest.checkouts) == (5, 2)
    await rt.ingest.stop()
    assert pool.checkedout() == 0
