"""Assessment rules: is a result acceptable, and was the micro-credential achieved?

Pure functions: no broker, database or HTTP here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from microcred_shared.catalog import Catalog, Definition, PassRule
from microcred_shared.events import AssessmentResultSubmitted


class InvalidResult(ValueError):
    """The result cannot be judged: it is refused with this reason."""


@dataclass(frozen=True)
class Decision:
    achieved: bool
    reason: str


def sender_provider(source: str) -> str | None:
    """Providers publish with ce_source `/providers/{id}` (HTTP ingest sets it for them)."""
    prefix = "/providers/"
    return source[len(prefix):] if source.startswith(prefix) else None


def check(result: AssessmentResultSubmitted, source: str, catalog: Catalog, now: datetime,
          skew: timedelta) -> Definition:
    sender = sender_provider(source)
    if sender != result.provider_id:
        raise InvalidResult(
            f"sender {source!r} may not publish results for provider {result.provider_id!r}")
    provider = catalog.provider(result.provider_id)
    if provider is None:
        raise InvalidResult(f"unknown provider {result.provider_id!r}")
    if provider.status != "active":
        raise InvalidResult(f"provider {provider.id!r} is {provider.status}")
    definition = catalog.definition(result.definition_id)
    if definition is None:
        raise InvalidResult(f"unknown credential definition {result.definition_id!r}")
    if definition.provider_id != result.provider_id:
        raise InvalidResult(
            f"definition {definition.id!r} belongs to another provider")
    if result.assessed_at.tzinfo is None:
        raise InvalidResult("assessed_at must carry a time zone offset")
    if result.assessed_at > now + skew:
        raise InvalidResult(f"assessed_at {result.assessed_at.isoformat()} is in the future")
    check_outcome(result, definition.pass_rule)
    return definition


def check_outcome(result: AssessmentResultSubmitted, rule: PassRule) -> None:
    if rule.kind == "score":
        assert rule.max_score is not None
        if result.score is None:
            raise InvalidResult("this definition is scored: a score is required")
        if not 0 <= result.score <= rule.max_score:
            raise InvalidResult(f"score {result.score} is outside 0..{rule.max_score:g}")
    elif rule.kind == "rubric":
        assert rule.levels
        if result.rubric_level not in rule.levels:
            raise InvalidResult(
                f"rubric_level {result.rubric_level!r} is not one of {', '.join(rule.levels)}")
    elif result.passed is None:
        raise InvalidResult("this definition is pass/fail: `passed` is required")


def decide(result: AssessmentResultSubmitted, rule: PassRule) -> Decision:
    if rule.kind == "score":
        assert rule.min_score is not None and result.score is not None
        ok = result.score >= rule.min_score
        return Decision(ok, f"score {result.score:g} {'meets' if ok else 'is below'} the "
                            f"pass mark {rule.min_score:g}/{rule.max_score:g}")
    if rule.kind == "rubric":
        assert rule.levels and rule.min_level and result.rubric_level
        ok = rule.levels.index(result.rubric_level) >= rule.levels.index(rule.min_level)
        return Decision(ok, f"rubric level {result.rubric_level!r} "
                            f"{'meets' if ok else 'is below'} the required {rule.min_level!r}")
    return Decision(bool(result.passed), "passed" if result.passed else "not passed")
