"""The compatibility checker over JSON Schemas: each breaking change is named, each
compatible one passes. Pure; the last tests change a real event model on purpose."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from microcred_shared.contract import schemas as event_schemas
from microcred_shared.contract.events import AssessmentResultSubmitted, Learner
from microcred_shared.contract.schema_compat import breaking_changes, is_compatible

ROOT = Path(__file__).resolve().parents[2]
RESULT_TYPE = AssessmentResultSubmitted.ce_type


def obj(required: tuple[str, ...] = (), extra: Any = False, **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props,
                              "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": None}


STR = {"type": "string"}
OLD = obj(("id", "name"), id={"type": "string", "format": "uuid"},
          name={"type": "string", "minLength": 1, "maxLength": 200},
          score=nullable({"type": "number", "minimum": 0, "maximum": 100}),
          level={"enum": ["low", "mid", "high"], "type": "string"},
          tags={"type": "array", "items": STR, "maxItems": 10},
          details={"type": "object", "additionalProperties": STR},
          count={"type": "integer"}, note=nullable(STR), flag={"type": "boolean"})


def changed(path: str, value: Any = None, *, remove: bool = False) -> dict[str, Any]:
    """OLD with one keyword set (or removed) at a slash-separated path."""
    schema = copy.deepcopy(OLD)
    *parents, last = path.split("/")
    node: Any = schema
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if remove:
        del node[last]
    else:
        node[last] = value
    return schema


def reasons(old: Any, new: Any) -> list[str]:
    return [str(c) for c in breaking_changes(old, new)]


BREAKING = {
    "a field removed": (changed("properties/name", remove=True), "name: field removed"),
    "a field retyped": (changed("properties/count", STR), "count: type changed"),
    "an optional field made required": (changed("required", ["id", "name", "note"]),
                                        "note: optional field made required"),
    "a new required field": (
        changed("properties/extra", STR) | {"required": ["id", "name", "extra"]},
        "extra: new required field"),
    "an enum narrowed": (changed("properties/level/enum", ["low", "high"]),
                         "level: no longer accepts 'mid'"),
    "an enum's values no longer fit a new format": (
        changed("properties/level", {"type": "string", "format": "date"}),
        "level: no longer accepts 'low', 'mid', 'high'"),
    "a pattern added": (changed("properties/name/pattern", "^[a-z]+$"), "name: pattern"),
    "maxLength lowered": (changed("properties/name/maxLength", 100),
                          "name: maxLength lowered from 200 to 100"),
    "minLength raised": (changed("properties/name/minLength", 3), "name: minLength raised"),
    "a minimum raised": (changed("properties/score/anyOf/0/minimum", 1),
                         "score: lower bound raised"),
    "a minimum made exclusive": (changed("properties/score/anyOf/0/exclusiveMinimum", 0),
                                 "score: lower bound raised from >= 0 to > 0"),
    "a maximum lowered": (changed("properties/score/anyOf/0/maximum", 10),
                          "score: upper bound lowered"),
    "multipleOf added": (changed("properties/count/multipleOf", 5), "count: multipleOf"),
    "a format added": (changed("properties/name/format", "email"), "name: format 'email'"),
    "a format changed": (changed("properties/id/format", "uri"), "id: format 'uri'"),
    "null no longer allowed": (changed("properties/note", STR), "note: no longer accepts null"),
    "number narrowed to integer": (changed("properties/score/anyOf/0/type", "integer"),
                                   "score: type changed from number to integer"),
    "array items retyped": (changed("properties/tags/items", {"type": "integer"}),
                            "tags[]: type changed"),
    "maxItems lowered": (changed("properties/tags/maxItems", 5), "tags: at most 5 items"),
    "uniqueItems added": (changed("properties/tags/uniqueItems", True), "tags: items must"),
    "map values retyped": (changed("properties/details/additionalProperties",
                                   {"type": "integer"}), "details.*: type changed"),
    "extra keys forbidden": (changed("properties/details/additionalProperties", False),
                             "details: additional properties no longer allowed"),
    "an unknown keyword added": (changed("properties/name/not", {"const": "x"}),
                                 "name: keyword 'not' changed"),
    "an allOf of several schemas added": (
        changed("properties/name/allOf", [{"maxLength": 10}, {"minLength": 2}]),
        "name: keyword 'allOf' changed (not understood: assumed breaking)"),
    "a boolean made a const": (changed("properties/flag", {"const": True}),
                               "flag: no longer accepts False"),
}


@pytest.mark.parametrize("name", sorted(BREAKING))
def test_a_breaking_change_is_named_with_its_field(name: str) -> None:
    new, expected = BREAKING[name]
    found = reasons(OLD, new)
    assert any(expected in line for line in found), found
    assert not is_compatible(OLD, new)


COMPATIBLE = {
    "unchanged": OLD,
    "a new optional field": changed("properties/extra", nullable(STR)),
    "an enum extended": changed("properties/level/enum", ["low", "mid", "high", "top"]),
    "maxLength raised": changed("properties/name/maxLength", 500),
    "maxLength dropped": changed("properties/name/maxLength", remove=True),
    "a minimum lowered": changed("properties/score/anyOf/0/minimum", -5),
    "a format dropped": changed("properties/id/format", remove=True),
    "a required field made optional": changed("required", ["id"]),
    "a field made nullable": changed("properties/count", nullable({"type": "integer"})),
    "integer widened to number": changed("properties/count/type", "number"),
    "descriptions and defaults changed": changed("properties/name/description", "new words")
    | {"title": "Renamed", "description": "other"},
    "maxItems dropped": changed("properties/tags/maxItems", remove=True),
    "a type list spelled as anyOf": changed("properties/note",
                                            {"type": ["string", "null"]}),
}


@pytest.mark.parametrize("name", sorted(COMPATIBLE))
def test_a_compatible_change_passes(name: str) -> None:
    assert reasons(OLD, COMPATIBLE[name]) == []


def test_refs_are_followed_into_defs_and_nested_paths_are_named() -> None:
    old = {"$defs": {"Learner": obj(("email",), email={"type": "string", "maxLength": 320})},
           **obj(("learner",), learner={"$ref": "#/$defs/Learner"})}
    renamed = {"$defs": {"Person": obj(("email",), email={"type": "string",
                                                          "maxLength": 320})},
               **obj(("learner",), learner={"$ref": "#/$defs/Person", "description": "x"})}
    assert reasons(old, renamed) == []
    tighter = copy.deepcopy(renamed)
    tighter["$defs"]["Person"]["properties"]["email"]["maxLength"] = 100
    assert reasons(old, tighter) == ["learner.email: maxLength lowered from 320 to 100"]
    inlined = obj(("learner",), learner=obj(("email",), email={"type": "string"}))
    assert reasons(old, inlined) == []


def test_a_recursive_schema_is_checked_without_looping() -> None:
    children = {"type": "array", "items": {"$ref": "#/$defs/Node"}}
    tree: dict[str, Any] = {"$defs": {"Node": obj((), name=STR, children=children)},
                            "$ref": "#/$defs/Node"}
    assert reasons(tree, copy.deepcopy(tree)) == []
    tighter = copy.deepcopy(tree)
    tighter["$defs"]["Node"]["properties"]["name"]["maxLength"] = 3
    assert reasons(tree, tighter) == ["name: maxLength lowered from none to 3"]


def test_a_field_added_where_extra_keys_were_open_must_accept_what_they_could_be() -> None:
    open_map = obj((), extra=True, id=STR)
    assert reasons(open_map, obj((), extra=True, id=STR, more={"type": "integer"})) \
        == ["more: now limited to type integer (any type before)"]
    closed = obj((), id=STR)
    assert reasons(closed, obj((), id=STR, more={"type": "integer"})) == []


def test_a_union_alternative_that_disappears_is_named() -> None:
    old = {"anyOf": [STR, {"type": "integer"}, {"type": "null"}]}
    assert reasons(old, {"anyOf": [STR, {"type": "null"}]}) \
        == ["(payload): type changed from integer to string"]
    assert reasons(old, {"type": ["string", "number", "null"]}) == []


# --- on a real event model -----------------------------------------------------------------


class EnglishOnlyLearner(Learner):
    language: Literal["en"] = "en"  # "fr" is no longer accepted


class TighterResult(AssessmentResultSubmitted):
    """AssessmentResultSubmitted with three deliberately breaking edits (and no ce_type of
    its own: it registers nothing)."""

    result_id: str = Field(min_length=1, max_length=50)
    learner: EnglishOnlyLearner
    score: float  # was optional and nullable


class ResultWithCampus(AssessmentResultSubmitted):
    campus: str | None = Field(default=None, max_length=100)


def _snapshot() -> dict[str, Any]:
    path = ROOT / event_schemas.SNAPSHOT_DIR / f"{RESULT_TYPE}.json"
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def test_a_deliberately_breaking_change_of_a_real_event_fails_the_snapshot_check() -> None:
    found = event_schemas.compare({RESULT_TYPE: _snapshot()},
                                  {RESULT_TYPE: event_schemas.schema_of(TighterResult)})
    assert not found.up_to_date
    assert [str(c) for c in found.breaking[RESULT_TYPE]] == [
        "result_id: maxLength lowered from 200 to 50",
        "learner.language: no longer accepts 'fr'",
        "score: no longer accepts null",
        "score: optional field made required",
    ]
    assert "add a new type .v2 instead" in found.lines()[0]


def test_a_new_optional_field_of_a_real_event_only_asks_for_a_refresh() -> None:
    found = event_schemas.compare({RESULT_TYPE: _snapshot()},
                                  {RESULT_TYPE: event_schemas.schema_of(ResultWithCampus)})
    assert found.breaking == {} and found.refresh == [RESULT_TYPE]
    assert found.lines() == [f"{RESULT_TYPE}: compatible change, refresh the snapshot"]


def test_a_breaking_change_under_a_new_version_is_a_new_snapshot(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / f"{RESULT_TYPE}.json").write_text(event_schemas.dumps(_snapshot()))
    v2 = RESULT_TYPE.removesuffix(".v1") + ".v2"
    code = {RESULT_TYPE: _snapshot(), v2: event_schemas.schema_of(TighterResult)}
    monkeypatch.setattr(event_schemas, "current_schemas", lambda: code)
    found = event_schemas.write_snapshots(tmp_path)
    assert found.new_types == [v2] and found.breaking == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{RESULT_TYPE}.json", f"{v2}.json"]


def test_writing_snapshots_refuses_a_breaking_change(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    kept = event_schemas.dumps(_snapshot())
    (tmp_path / f"{RESULT_TYPE}.json").write_text(kept)
    monkeypatch.setattr(event_schemas, "current_schemas",
                        lambda: {RESULT_TYPE: event_schemas.schema_of(TighterResult)})
    found = event_schemas.write_snapshots(tmp_path)
    assert RESULT_TYPE in found.breaking
    assert (tmp_path / f"{RESULT_TYPE}.json").read_text() == kept
