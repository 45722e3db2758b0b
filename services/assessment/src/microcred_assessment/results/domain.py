"""Assessment rules: who may submit a result and can it be judged (`authorize`, `check`),
and was the micro-credential achieved under the definition's pass rule (`decide`)?

Pure functions: no broker, database or HTTP here.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from microcred_shared.catalog import Catalog, Definition, PassRule
from microcred_shared.contract.events import (
    NAMESPACE,
    AssessmentDecided,
    AssessmentResultSubmitted,
    learner_key,
)
from microcred_shared.contract.ids import name_id
from microcred_shared.vc.canon import unsafe_character


class InvalidResult(ValueError):
    """The result cannot be judged: it is refused with this reason."""


class Refused(InvalidResult):
    """The sender may not submit this result: refused, audited, nothing issued."""

    def __init__(self, reason: str, action: str = "result.submit", status: int = 403) -> None:
        super().__init__(reason)
        self.action, self.status = action, status


class UnfitText(InvalidResult):
    """A string of the result holds a character it may not: refused at the door, so the
    provider is told (issuance would refuse to sign it later, where nobody hears)."""

    action = "result.unfit-text"


@dataclass(frozen=True)
class Decision:
    achieved: bool
    reason: str


def sender_provider(source: str) -> str | None:
    """Providers publish with ce_source `/providers/{id}` (HTTP ingest sets it for them)."""
    prefix = "/providers/"
    return source[len(prefix):] if source.startswith(prefix) else None


def actor_of(provider_id: str | None) -> str:
    return f"provider:{provider_id}" if provider_id else "unknown"


@functools.lru_cache(maxsize=16_384)  # asked at the door and again by the decision
def assessment_id_for(provider_id: str, result_id: str) -> uuid.UUID:
    """The same provider result always gets the same assessment id, whichever way it came:
    `uuid.uuid5(NAMESPACE, f"assessment:{provider_id}:{result_id}")` (`ids.name_id`, the
    same value for less)."""
    return name_id(_NAMESPACE_BYTES, f"assessment:{provider_id}:{result_id}")


_NAMESPACE_BYTES = NAMESPACE.bytes


def authorize(result: AssessmentResultSubmitted, sender: str | None,
              catalog: Catalog) -> Definition:
    """Who may submit what: an active provider, acting for itself, for a definition it owns
    or co-issues. `sender` is the authenticated provider (API key or Kafka principal)."""
    if sender != result.provider_id:
        raise Refused(f"sender {sender or 'unknown'!r} may not publish results for provider "
                      f"{result.provider_id!r}", "result.forged-provider")
    provider = catalog.provider(result.provider_id)
    if provider is None:
        raise Refused(f"unknown provider {result.provider_id!r}", "result.unknown-provider")
    if provider.status != "active":
        why = f": {provider.status_reason}" if provider.status_reason else ""
        raise Refused(f"provider {provider.id!r} is {provider.status}{why}",
                      "result.provider-suspended")
    definition = catalog.definition(result.definition_id)
    if definition is None:
        raise InvalidResult(f"unknown credential definition {result.definition_id!r}")
    if not definition.may_submit(provider.id):
        raise Refused(f"definition {definition.id!r} belongs to another provider and is not "
                      f"co-issued by {provider.id!r}", "result.foreign-definition",
                      422)  # 422 since the first HTTP API: kept for its clients
    if definition.status != "active":
        raise InvalidResult(f"definition {definition.id!r} is {definition.status}")
    if definition.stack is not None:
        raise InvalidResult(f"{definition.id!r} is a stack: it is awarded when its "
                            "components are, not assessed")
    return definition


# Beyond what signing refuses (`unsafe_character`): every other control character (no field
# of a result is multi-line: tab, line breaks and C1 controls only hide or split text) and
# the bidirectional embedding, override and isolate controls (U+202A..U+202E,
# U+2066..U+2069), which make a name display as other text ("Trojan Source"). The marks
# U+200E, U+200F and U+061C stay allowed: mixed-direction names need them.
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def unfit_character(text: str) -> str | None:
    """Why `text` may not enter a credential, or None."""
    if (problem := unsafe_character(text)) is not None:
        return problem
    if (bad := _UNFIT.search(text)) is not None:
        code = ord(bad.group())
        kind = ("a bidirectional control: the text would display as other text"
                if 0x202A <= code <= 0x2069 else "a control character")
        return f"character U+{code:04X} is not allowed ({kind})"
    return None


def escaped(text: str) -> str:
    """`text` with its unfit characters written as \\uXXXX: storable, and visibly so."""
    return _UNFIT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}" if path else k)]
    return []


def _texts(model: BaseModel) -> list[str]:
    """The strings of a result's fields, nested ones included (no paths: see `check_text`):
    what `model_dump` would give, read from the model's own fields without building it."""
    out: list[str] = []
    for item in model.__dict__.values():
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, BaseModel):
            out.extend(_texts(item))
    return out


def check_text(result: AssessmentResultSubmitted) -> None:
    """Every string of a result may be signed and stored: the learner's names are signed
    into the credential, the others are stored and published (issue 13). The rules look
    at one character at a time, so all the strings are checked in one pass, without their
    paths; only a result that fails is searched string by string, to say where (issue 12:
    building every string's path was about 3 % of assessment's CPU per HTTP request)."""
    if unfit_character(" ".join(_texts(result))) is None:
        return
    for path, text in _strings(result.model_dump(mode="python"), ""):
        if (problem := unfit_character(text)) is not None:
            raise UnfitText(f"{path}: {problem}")


def check(result: AssessmentResultSubmitted, source: str, catalog: Catalog, now: datetime,
          skew: timedelta) -> Definition:
    # First: the refusals below quote these strings, and their audit records store them.
    check_text(result)
    definition = authorize(result, sender_provider(source), catalog)
    if result.assessed_at.tzinfo is None:
        raise InvalidResult("assessed_at must carry a time zone offset")
    if result.assessed_at > now + skew:
        raise InvalidResult(f"assessed_at {result.assessed_at.isoformat()} is in the future")
    assert definition.pass_rule is not None
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


def decided(result: AssessmentResultSubmitted, definition: Definition,
            now: datetime) -> AssessmentDecided:
    """The decision on a result that passed `check`, as the event issuance acts on."""
    assert definition.pass_rule is not None  # check() refuses stacks
    decision = decide(result, definition.pass_rule)
    return AssessmentDecided(
        assessment_id=assessment_id_for(result.provider_id, result.result_id),
        provider_id=result.provider_id, result_id=result.result_id,
        definition_id=definition.id, definition_version=definition.version,
        learner=result.learner, learner_key=learner_key(result.learner.email),
        achieved=decision.achieved, reason=decision.reason, score=result.score,
        rubric_level=result.rubric_level, assessed_at=result.assessed_at, decided_at=now,
    )
