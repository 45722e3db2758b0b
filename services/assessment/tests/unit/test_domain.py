from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from microcred_assessment.results.domain import InvalidResult, assessment_id_for, check, decide
from microcred_shared.catalog import load_catalog
from microcred_shared.contract.events import NAMESPACE
from microcred_shared.settings import REPO_ROOT
from microcred_testkit.backbone import result

CATALOG = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")
NOW = datetime.now(UTC)
SKEW = timedelta(minutes=5)


def judge(res, source=None):
    definition = check(res, source or f"/providers/{res.provider_id}", CATALOG, NOW, SKEW)
    return decide(res, definition.pass_rule)


def test_a_score_at_the_pass_mark_achieves_and_one_below_does_not():
    at = judge(result("lakeshore-college", "lakeshore-data-analytics-fundamentals", score=70))
    below = judge(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                         score=69.5))
    assert at.achieved and "meets" in at.reason
    assert not below.achieved and "below the pass mark 70/100" in below.reason


def test_a_rubric_level_achieves_from_the_required_level_up():
    rule = "cmu-sustainable-forestry"
    assert judge(result("coast-mountain-university", rule, rubric_level="exemplary")).achieved
    assert judge(result("coast-mountain-university", rule, rubric_level="proficient")).achieved
    assert not judge(result("coast-mountain-university", rule,
                            rubric_level="developing")).achieved


def test_pass_fail_follows_the_passed_flag():
    d = "lakeshore-workplace-safety"
    assert judge(result("lakeshore-college", d, passed=True)).achieved
    assert not judge(result("lakeshore-college", d, passed=False)).achieved


@pytest.mark.parametrize(("res", "source", "reason"), [
    (result("lakeshore-college", "lakeshore-data-analytics-fundamentals", score=101), None,
     "outside 0..100"),
    (result("lakeshore-college", "lakeshore-data-analytics-fundamentals"), None,
     "a score is required"),
    (result("coast-mountain-university", "cmu-sustainable-forestry", rubric_level="superb"),
     None, "is not one of"),
    (result("lakeshore-college", "lakeshore-workplace-safety"), None, "`passed` is required"),
    (result("lakeshore-college", "no-such-definition", score=1), None, "unknown credential"),
    (result("no-such-provider", "lakeshore-workplace-safety", passed=True), None,
     "unknown provider"),
    (result("lakeshore-college", "cmu-sustainable-forestry", rubric_level="exemplary"), None,
     "belongs to another provider"),
    (result("coast-mountain-university", "cmu-sustainable-forestry", rubric_level="exemplary"),
     "/providers/lakeshore-college", "may not publish results for provider"),
])
def test_results_that_cannot_be_judged_are_refused_with_the_reason(res, source, reason):
    with pytest.raises(InvalidResult, match=reason):
        judge(res, source)


def test_a_result_dated_in_the_future_is_refused():
    res = result("lakeshore-college", "lakeshore-workplace-safety", passed=True)
    res = res.model_copy(update={"assessed_at": NOW + timedelta(hours=2)})
    with pytest.raises(InvalidResult, match="in the future"):
        judge(res)


def test_an_assessment_id_is_uuid5_of_the_provider_and_result_as_it_always_was() -> None:
    """Issuance, the registry and the provider's status calls know an assessment by this
    id: a result re-sent after an upgrade must get the one the first copy got."""
    rng = random.Random(18)
    pairs = [("lakeshore-college", "r-1"), ("p", ""), ("é", "中😀"), ("a:b", "c:d")]
    pairs += [(f"provider-{rng.randrange(10**4)}", f"{uuid.UUID(int=rng.getrandbits(128))}")
              for _ in range(5_000)]
    pairs += [(f"p{n}", "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(n % 50)))
              for n in range(2_000)]
    for provider_id, result_id in pairs:
        got = assessment_id_for(provider_id, result_id)
        want = uuid.uuid5(NAMESPACE, f"assessment:{provider_id}:{result_id}")
        assert type(got) is uuid.UUID and got == want and str(got) == str(want)
