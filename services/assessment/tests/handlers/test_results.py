"""Results: what a provider's result becomes when it arrives on Kafka (a decision published
once, or a dead letter with the reason) or over HTTP ingest (into the results topic)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest

from microcred_assessment.results import handlers
from microcred_assessment.results.domain import InvalidResult, Refused
from microcred_assessment.results.ingest import IngestStore
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_testkit.backbone import provider_headers, result

SKEW = timedelta(minutes=5)
SCORED = ("lakeshore-college", "lakeshore-data-analytics-fundamentals")


async def consume(kit, live, *records):
    handler = partial(handlers.on_results, live=live, skew=SKEW)
    await kit.consume(handler, AssessmentResultSubmitted, records)


def on_results_topic(kit, res, **headers):
    return kit.record(topics.RESULTS, res, provider_headers(res, **headers))


async def test_a_passing_result_is_decided_and_published_once_even_when_resubmitted(kit, live):
    res = result(*SCORED, score=82)
    await consume(kit, live, on_results_topic(kit, res))
    await consume(kit, live, on_results_topic(kit, res))  # a new ce_id: a resubmission

    decided = await kit.outbox(topics.DECISIONS)
    assert len(decided) == 1
    body = decided[0].body
    assert body["achieved"] is True and "meets the pass mark 70/100" in body["reason"]
    assert body["assessment_id"] == str(handlers.assessment_id_for("lakeshore-college",
                                                                    res.result_id))
    [row] = await kit.rows("SELECT * FROM results WHERE result_id = :r", r=res.result_id)
    assert row["achieved"] is True and row["submissions"] == 2
    assert await kit.outbox(topics.dlq(topics.RESULTS)) == []


async def test_a_result_below_the_pass_mark_is_decided_as_not_achieved(kit, live):
    await consume(kit, live, on_results_topic(kit, result(*SCORED, score=40)))
    [decided] = await kit.outbox(topics.DECISIONS)
    assert decided.body["achieved"] is False
    assert "is below the pass mark" in decided.body["reason"]


async def test_the_same_result_twice_in_one_batch_is_one_decision_counted_twice(kit, live):
    res = result(*SCORED, score=90)
    await consume(kit, live, on_results_topic(kit, res), on_results_topic(kit, res))
    assert len(await kit.outbox(topics.DECISIONS)) == 1
    [row] = await kit.rows("SELECT submissions FROM results")
    assert row["submissions"] == 2


async def test_a_result_redelivered_by_kafka_changes_nothing(kit, live):
    res = result(*SCORED, score=90)
    rec = on_results_topic(kit, res)
    await consume(kit, live, rec)
    await consume(kit, live, rec)  # the same record (same ce_id) after a rebalance
    [row] = await kit.rows("SELECT submissions FROM results")
    assert row["submissions"] == 1 and len(await kit.outbox(topics.DECISIONS)) == 1


async def test_a_result_for_an_unknown_definition_is_dead_lettered_with_the_reason(kit, live):
    await consume(kit, live, on_results_topic(kit, result("lakeshore-college", "no-such",
                                                          passed=True)))
    [letter] = await kit.outbox(topics.dlq(topics.RESULTS))
    assert letter.headers["dlq_reason"] == "unknown credential definition 'no-such'"
    assert await kit.outbox(topics.DECISIONS) == []
    # Invalid, not refused: the sender learns why, nothing is audited.
    assert [e for e in await kit.audit() if e["outcome"] == "refused"] == []


async def test_a_score_out_of_range_is_dead_lettered_and_the_batch_goes_on(kit, live):
    bad, good = result(*SCORED, score=140), result(*SCORED, score=75)
    await consume(kit, live, on_results_topic(kit, bad), on_results_topic(kit, good))
    [letter] = await kit.outbox(topics.dlq(topics.RESULTS))
    assert "outside 0..100" in letter.headers["dlq_reason"]
    assert [d.body["result_id"] for d in await kit.outbox(topics.DECISIONS)] == [
        good.result_id]


async def test_a_result_for_another_providers_definition_is_refused_dead_lettered_and_audited(
        kit, live):
    res = result("coast-mountain-university", SCORED[1], score=90)
    await consume(kit, live, on_results_topic(kit, res))
    [letter] = await kit.outbox(topics.dlq(topics.RESULTS))
    assert "belongs to another provider" in letter.headers["dlq_reason"]
    [entry] = await kit.audit("result.foreign-definition")
    assert entry["actor"] == "provider:coast-mountain-university"
    assert entry["channel"] == "kafka" and entry["outcome"] == "refused"
    assert entry["details"]["result_id"] == res.result_id
    assert entry["details"]["topic"] == topics.RESULTS
    # The audit record is published too (the dead letter drops the item's own outgoing).
    assert len(await kit.outbox(topics.AUDIT)) == 1
    assert await kit.outbox(topics.DECISIONS) == []


async def test_on_a_providers_own_topic_the_topic_not_the_ce_source_says_who_sent_it(
        kit, live):
    # lakeshore's principal writes a result naming coast-mountain, claiming its ce_source.
    res = result("coast-mountain-university", "cmu-sustainable-forestry",
                 rubric_level="exemplary")
    rec = kit.record(topics.provider_results("lakeshore-college"), res,
                     provider_headers(res, source="/providers/coast-mountain-university"))
    await consume(kit, live, rec)
    [entry] = await kit.audit("result.forged-provider")
    assert entry["actor"] == "provider:lakeshore-college"
    assert "'lakeshore-college' may not publish results for provider" in entry["reason"]
    assert await kit.outbox(topics.DECISIONS) == []
    assert len(await kit.outbox(topics.dlq(topics.provider_results("lakeshore-college")))) == 1


async def test_a_result_from_a_suspended_provider_is_refused_with_the_suspension_reason(
        kit, live):
    from microcred_assessment.catalogue import handlers as catalogue

    async with kit.engine.begin() as conn:
        await catalogue.set_status(conn, "lakeshore-college", "suspended",
                                   "accreditation under review", "operator")
    await live.refresh()
    await consume(kit, live, on_results_topic(kit, result(*SCORED, score=90)))
    [letter] = await kit.outbox(topics.dlq(topics.RESULTS))
    assert "is suspended: accreditation under review" in letter.headers["dlq_reason"]
    assert len(await kit.audit("result.provider-suspended")) == 1


async def test_http_ingest_decides_an_accepted_result_at_the_door(kit, live):
    """ADR 40: nothing goes to topics.RESULTS; the decision is stored and sent to issuance
    under the assessment id the answer names, the same as over Kafka."""
    res = result(*SCORED, score=82)
    submitted = await handlers.submit(kit.engine, IngestStore(kit.engine, lambda: None), res,
                                      "lakeshore-college", catalog=live.current, skew=SKEW,
                                      traceparent=None)
    assert await kit.outbox(topics.RESULTS) == []
    [decided] = await kit.outbox(topics.DECISIONS)
    assert decided.headers["ce_source"] == "/microcred/assessment"
    assert decided.body["result_id"] == res.result_id and decided.body["achieved"] is True
    assert submitted.assessment_id == handlers.assessment_id_for("lakeshore-college",
                                                                 res.result_id)
    assert decided.body["assessment_id"] == str(submitted.assessment_id)
    [row] = await kit.rows("SELECT ce_id, submissions FROM results")
    assert (row["ce_id"], row["submissions"]) == (submitted.event_id, 1)
    # ... and when the provider also publishes it over Kafka it is counted, not redecided.
    await consume(kit, live, on_results_topic(kit, res))
    assert len(await kit.outbox(topics.DECISIONS)) == 1
    [row] = await kit.rows("SELECT submissions FROM results")
    assert row["submissions"] == 2


async def test_http_ingest_refuses_a_forged_provider_and_the_audit_record_commits(kit, live):
    res = result(*SCORED, score=82)
    with pytest.raises(Refused) as refused:
        await handlers.submit(kit.engine, IngestStore(kit.engine, lambda: None), res,
                              "coast-mountain-university", catalog=live.current, skew=SKEW,
                              traceparent=None)
    assert refused.value.status == 403
    [entry] = await kit.audit("result.forged-provider")
    assert entry["channel"] == "http" and entry["actor"] == "provider:coast-mountain-university"
    assert await kit.outbox(topics.DECISIONS) == []
    assert len(await kit.outbox(topics.AUDIT)) == 1


async def test_http_ingest_refuses_an_invalid_result_without_writing_anything(kit, live):
    with pytest.raises(InvalidResult, match="pass/fail: `passed` is required"):
        await handlers.submit(kit.engine, IngestStore(kit.engine, lambda: None),
                              result("lakeshore-college", "lakeshore-workplace-safety"),
                              "lakeshore-college", catalog=live.current, skew=SKEW,
                              traceparent=None)
    assert await kit.outbox() == []


async def test_a_results_status_is_pending_until_decided_and_only_for_its_provider(kit, live):
    res = result(*SCORED, score=82)
    assert (await handlers.status_of(kit.engine, "lakeshore-college", res.result_id)
            )["status"] == "pending"
    await consume(kit, live, on_results_topic(kit, res))
    status = await handlers.status_of(kit.engine, "lakeshore-college", res.result_id)
    assert status["status"] == "decided" and status["achieved"] is True
    assert status["submissions"] == 1
    other = await handlers.status_of(kit.engine, "coast-mountain-university", res.result_id)
    assert other["status"] == "pending"
