"""A batch's body is read two ways (issue 12, item 2): a plain batch — every result one the
model accepts — in one step from the bytes, anything else result by result, which says
what is wrong with each one. Both must read the same results from any body the one-step
path accepts, and the one-step path must leave every other body to the item-by-item one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microcred_assessment.results.routes import MAX_BATCH, _parse_items, _parse_plain
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.problems import Problem
from microcred_testkit.backbone import learner, result


def doc(n: int = 0, **change: Any) -> dict[str, Any]:
    res = result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                 result_id=f"r-{n}", score=80, who=learner(f"p{n}"))
    return json.loads(res.model_dump_json()) | change


def batch(*docs: Any, **extra: Any) -> bytes:
    return json.dumps({"results": list(docs), **extra}).encode()


def same_reading(body: bytes) -> list[AssessmentResultSubmitted] | None:
    """What the one-step path read, after checking the item-by-item path reads the same."""
    plain = _parse_plain(body)
    if plain is not None:
        items, ids = _parse_items(body)
        assert items == plain
        assert ids == [r.result_id for r in plain]
    return plain


PLAIN = {
    "one": batch(doc()),
    "three, spaced and reordered": json.dumps({"results": [
        dict(reversed(doc(i).items())) for i in range(3)]}, indent=2).encode() + b"\n ",
    "a key twice in a result": batch(doc()).replace(b'"result_id": "r-0"',
                                                    b'"result_id": "r-x", "result_id": "r-0"'),
    "results twice": b'{"results": [], "results": ' + batch(doc())[12:],
    "an integer score": batch(doc(score=80)),
    "the same result twice": batch(doc(), doc()),
    f"{MAX_BATCH} results": batch(*(doc(i) for i in range(MAX_BATCH))),
}

NOT_PLAIN = {
    "a lax score among good ones": batch(doc(0), doc(1, score="80"), doc(2)),
    "not an object among good ones": batch(doc(0), "a string"),
    "an unknown field in a result": batch(doc(colour="blue")),
    "a bad address": batch(doc(learner=doc()["learner"] | {"email": "nope"})),
    "a score NaN": batch(doc()).replace(b'"score": 80.0', b'"score": NaN'),
    "empty": batch(),
    f"{MAX_BATCH + 1} results": batch(*(doc(i) for i in range(MAX_BATCH + 1))),
    "another key beside results": batch(doc(), colour="blue"),
    "results not a list": b'{"results": {"a": 1}}',
    "an array": b"[" + json.dumps(doc()).encode() + b"]",
    "a byte-order mark": b"\xef\xbb\xbf" + batch(doc()),
    "UTF-16": batch(doc()).decode().encode("utf-16"),
    "trailing garbage": batch(doc()) + b" x",
    "not JSON": b"results=1",
    "nested too deep": b'{"results": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_a_plain_batch_is_read_in_one_step_as_result_by_result(name: str) -> None:
    got = same_reading(PLAIN[name])
    assert got is not None and len(got) >= 1


@pytest.mark.parametrize("name", list(NOT_PLAIN))
def test_any_other_body_is_left_to_the_result_by_result_path(name: str) -> None:
    assert _parse_plain(NOT_PLAIN[name]) is None
    try:  # and that path still answers it as it always did
        items, _ = _parse_items(NOT_PLAIN[name])
    except Problem as problem:
        assert problem.status in (400, 413)
    else:
        # json.loads reads a byte-order mark and UTF-16 (as it always did here); the
        # other bodies hold a result that its own request would get a 400 for
        readable = name in ("a byte-order mark", "UTF-16")
        assert all(isinstance(i, AssessmentResultSubmitted) for i in items) == readable


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(sorted(doc()) + ["learner.email", "learner.id",
                                              "learner.language", "learner.display_name"]),
       value=JSON | st.sampled_from(["2026-11-03T10:00:00Z", "2026-11-03T10:00:00+05:30",
                                     "a@b.ca", "fr", 0, 100, 80.5, -1, 10 ** 40]),
       where=st.integers(0, 2))
def test_any_field_of_any_result_set_to_any_json_reads_the_same_both_ways(
        field: str, value: Any, where: int) -> None:
    docs = [doc(i) for i in range(3)]
    if field.startswith("learner."):
        docs[where]["learner"][field.removeprefix("learner.")] = value
    else:
        docs[where][field] = value
    body = batch(*docs)
    if same_reading(body) is None:  # refused in one step: the other path finds why
        items, _ = _parse_items(body)
        assert not isinstance(items[where], AssessmentResultSubmitted)
