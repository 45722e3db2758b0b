"""Strict input, checked at the door (issue 13, item 2): a result parses by the same strict
rules over HTTP (the real app, in process) and over Kafka (the consumer loop), and a string
that could not be signed or stored is refused by assessment, where the provider hears it:
a 422 problem over HTTP, a dead letter and an audit entry for the sender over Kafka. Such a
result is never decided, so it never reaches issuance."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka.structs import ConsumerRecord

from microcred_assessment.results import handlers
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_testkit.backbone import provider_headers, result

SKEW = timedelta(minutes=5)
PASS_FAIL = ("lakeshore-college", "lakeshore-workplace-safety")
PROVIDER = "lakeshore-college"


@pytest.fixture
def api(app: tuple[httpx.AsyncClient, Any]) -> httpx.AsyncClient:
    """The real assessment app's client, presenting lakeshore's key (conftest.py)."""
    return app[0]


def payload(**changes: Any) -> dict[str, Any]:
    """A valid pass/fail result as JSON, with `changes` (dotted keys reach into learner)."""
    body = json.loads(result(*PASS_FAIL, passed=True).model_dump_json())
    for key, value in changes.items():
        target, _, name = key.rpartition(".")
        (body[target] if target else body)[name] = value
    return body


def raw_record(body: dict[str, Any], topic: str = topics.RESULTS) -> ConsumerRecord:
    """A Kafka record with real CloudEvents headers and `body` as its bytes, as sent."""
    value = json.dumps(body).encode()
    headers = provider_headers(result(*PASS_FAIL, passed=True))
    return ConsumerRecord(topic=topic, partition=0, offset=0, timestamp=0, timestamp_type=0,
                          key=b"k", value=value, checksum=None, serialized_key_size=1,
                          serialized_value_size=len(value), headers=headers)


async def consume(kit: Any, live: Any, *records: ConsumerRecord) -> None:
    await kit.consume(partial(handlers.on_results, live=live, skew=SKEW),
                      AssessmentResultSubmitted, records)


# What lax parsing took before (issue 13): a Unix time, numbers in strings, yes for true.
LAX = [
    pytest.param({"assessed_at": 12345}, "assessed_at", id="number-as-date"),
    pytest.param({"assessed_at": "12345"}, "assessed_at", id="numeric-string-as-date"),
    pytest.param({"assessed_at": "2026-11-03"}, "assessed_at", id="date-without-time"),
    pytest.param({"assessed_at": "2026-11-03T10:00:00"}, "assessed_at", id="no-offset"),
    pytest.param({"passed": "yes"}, "passed", id="string-as-boolean"),
    pytest.param({"passed": 1}, "passed", id="number-as-boolean"),
    pytest.param({"score": "82"}, "score", id="string-as-number"),
    pytest.param({"score": True}, "score", id="boolean-as-number"),
    pytest.param({"result_id": 42}, "result_id", id="number-as-string"),
    pytest.param({"learner.given_name": 7}, "learner.given_name", id="number-as-name"),
]


@pytest.mark.parametrize(("changes", "field"), LAX)
def test_the_same_strict_rules_parse_json_and_parsed_json(changes: dict[str, Any],
                                                           field: str) -> None:
    """Kafka validates the bytes (JSON mode), FastAPI the parsed body (python mode)."""
    body = payload(**changes)
    for validate in (lambda: AssessmentResultSubmitted.model_validate_json(json.dumps(body)),
                     lambda: AssessmentResultSubmitted.model_validate(body)):
        with pytest.raises(ValueError) as refused:
            validate()
        assert field in str(refused.value).replace("\n  ", ".")


@pytest.mark.parametrize("text", ["2026-11-03t10:00:00z", "2026-11-03T10:00:00.1234567891Z",
                                  "2026-11-03T10:00:00-05:30"])
def test_every_rfc3339_date_time_parses_in_both_modes(text: str) -> None:
    body = payload(assessed_at=text)
    assert AssessmentResultSubmitted.model_validate_json(json.dumps(body)).assessed_at == \
        AssessmentResultSubmitted.model_validate(body).assessed_at


def test_rfc3339_strings_and_whole_numbers_still_parse_in_both_modes() -> None:
    body = payload(assessed_at="2026-11-03T10:00:00.5+02:00", score=82)
    for parsed in (AssessmentResultSubmitted.model_validate_json(json.dumps(body)),
                   AssessmentResultSubmitted.model_validate(body)):
        assert parsed.assessed_at.isoformat() == "2026-11-03T10:00:00.500000+02:00"
        assert parsed.score == 82.0


@pytest.mark.parametrize(("changes", "field"), LAX)
async def test_lax_input_is_a_400_problem_over_http(api: httpx.AsyncClient, kit: Any,
                                                    changes: dict[str, Any],
                                                    field: str) -> None:
    r = await api.post("/v1/assessment-results", json=payload(**changes))
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    pointers = [e["pointer"] for e in r.json()["errors"]]
    assert "/" + field.replace(".", "/") in pointers
    assert await kit.outbox(topics.DECISIONS) == []


@pytest.mark.parametrize(("changes", "field"), LAX)
async def test_lax_input_is_dead_lettered_over_kafka(kit: Any, live: Any,
                                                     changes: dict[str, Any],
                                                     field: str) -> None:
    good = payload()
    await consume(kit, live, raw_record(payload(**changes)), raw_record(good))
    [letter] = await kit.outbox(topics.dlq(topics.RESULTS))
    assert letter.headers["dlq_reason"].startswith("invalid AssessmentResultSubmitted payload")
    assert field in letter.headers["dlq_reason"]
    [decided] = await kit.outbox(topics.DECISIONS)
    assert decided.body["result_id"] == good["result_id"]  # the valid one goes on


async def test_a_valid_result_over_http_is_still_accepted(api: httpx.AsyncClient,
                                                          kit: Any) -> None:
    body = payload(score=None)
    r = await api.post("/v1/assessment-results", json=body)
    assert r.status_code == 202, r.text
    [decided] = await kit.outbox(topics.DECISIONS)
    assert decided.body["result_id"] == body["result_id"]


# Characters that cannot be signed (vc.canon) or that make a name display as other text.
UNFIT = [pytest.param("\x00", "U+0000", id="NUL"), pytest.param("\x07", "U+0007", id="BEL"),
         pytest.param("\x1b", "U+001B", id="ESC"), pytest.param("\u202e", "U+202E", id="RLO"),
         pytest.param("\u2066", "U+2066", id="LRI"), pytest.param("\x85", "U+0085", id="NEL"),
         pytest.param("\n", "U+000A", id="LF")]
FIELDS = ["learner.family_name", "learner.display_name", "result_id", "learner.id"]
# Every character in a learner name, and one in each other field (all other strings too).
CASES = [pytest.param("learner.given_name", c.values[0], c.values[1], id=f"given_name-{c.id}")
         for c in UNFIT] + [pytest.param(f, "\x1b", "U+001B", id=f"{f}-ESC") for f in FIELDS]


@pytest.mark.parametrize(("field", "char", "code"), CASES)
async def test_unfit_text_is_dead_lettered_and_audited_for_the_sender_over_kafka(
        kit: Any, live: Any, char: str, code: str, field: str) -> None:
    body = payload(**{field: f"Ana{char}lia"})
    good = payload()
    topic = topics.provider_results(PROVIDER)
    await consume(kit, live, raw_record(body, topic), raw_record(good, topic))
    [letter] = await kit.outbox(topics.dlq(topic))
    assert letter.headers["dlq_reason"].startswith(f"{field}: character {code} is not allowed")
    [entry] = await kit.audit("result.unfit-text")
    assert entry["provider_id"] == PROVIDER and entry["actor"] == f"provider:{PROVIDER}"
    assert entry["channel"] == "kafka" and entry["outcome"] == "refused"
    assert entry["reason"] == letter.headers["dlq_reason"]
    # Decided: only the valid one. Issuance acts on decisions only.
    assert [d.body["result_id"] for d in await kit.outbox(topics.DECISIONS)] == [
        good["result_id"]]
    assert await kit.rows("SELECT * FROM results WHERE result_id <> :r",
                          r=good["result_id"]) == []


@pytest.mark.parametrize(("field", "char", "code"), [
    *CASES, pytest.param("rubric_level", "\u202e", "U+202E", id="rubric_level-RLO")])
async def test_unfit_text_is_a_422_problem_over_http(api: httpx.AsyncClient, kit: Any,
                                                     char: str, code: str,
                                                     field: str) -> None:
    r = await api.post("/v1/assessment-results", json=payload(**{field: f"Ana{char}lia"}))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert code in problem["detail"] and field.split(".")[-1] in (
        problem["detail"] + json.dumps(problem.get("errors", [])))
    assert await kit.outbox(topics.DECISIONS) == []


def test_everything_signing_refuses_assessment_refuses() -> None:
    from microcred_assessment.results.domain import unfit_character
    from microcred_shared.vc.canon import unsafe_character

    refused_by_signing = [c for c in map(chr, range(0x10000)) if unsafe_character(c)]
    assert len(refused_by_signing) > 2000  # controls and the surrogates
    assert [c for c in refused_by_signing if unfit_character(c) is None] == []
    # ... and ordinary names in any script pass.
    for name in ("Zoë", "Nguyễn", "محمد", "李小龍", "O'Brien-Smith", "\u200fشهد\u200f", "👩🏽‍🎓"):
        assert unfit_character(name) is None



async def test_a_conflicting_duplicate_is_dead_lettered_and_audited_for_the_sender(
        kit: Any, live: Any) -> None:
    """Same ce_id, other payload: refused visibly; the first result's decision stands."""
    from microcred_shared.consumer import BatchConsumer

    consumer = BatchConsumer(service="assessment", engine=kit.engine,
                             handler=partial(handlers.on_results, live=live, skew=SKEW),
                             expected=AssessmentResultSubmitted,
                             on_conflict=handlers.on_conflicting_duplicates)
    topic = topics.provider_results(PROVIDER)
    first = raw_record(payload(), topic)
    reused = raw_record(payload(passed=False), topic)
    reused.headers[:] = first.headers  # the same ce_id
    ce_id = dict(first.headers)["ce_id"].decode()
    await consumer.apply([first])
    await consumer.apply([reused])
    await consumer.apply([first])  # a plain redelivery: nothing more
    [letter] = await kit.outbox(topics.dlq(topic))
    assert letter.headers["dlq_reason"].startswith(
        f"ce_id '{ce_id}' was already used for a different payload")
    [entry] = await kit.audit("result.conflicting-duplicate")
    assert entry["provider_id"] == PROVIDER and entry["channel"] == "kafka"
    assert entry["details"]["ce_id"] == ce_id
    assert entry["details"]["result_id"] == json.loads(reused.value)["result_id"]
    [decided] = await kit.outbox(topics.DECISIONS)
    assert decided.body["result_id"] == json.loads(first.value)["result_id"]
