"""Is a new JSON Schema of an event type still compatible with the old one?

The rule (docs/events.md): a new version of a payload schema must **accept every payload the
old one accepted**, and must **keep every field** the old one described. Records already on
a topic (compacted topics keep them for ever, a dead letter is replayed months later) and
publishers built against the old schema, a partner institution's first of all, then keep
working; a consumer written against the old schema still finds every field it reads.

So these break a consumer: removing a field, retyping it, making an optional field required,
adding a required field, tightening a type (a narrower enum, a new pattern or format, a lower
maxLength, a higher minimum, `additionalProperties: false` where extra keys were allowed),
dropping `null` from a nullable field. These do not: a new optional field, a loosened
constraint, a longer enum, a new description. A breaking change needs a new event type
(`....v2`) instead.

`breaking_changes(old, new)` is a plain function over two JSON Schemas (draft 2020-12, as
pydantic writes them): it resolves local `$ref`s into `$defs`, reads `anyOf`/`oneOf` (and
`type` lists) as unions, `allOf` of one schema, `const`/`enum`, `required`, `type`,
`format`, string, number, array and object keywords. Where it cannot decide (a changed regex,
an `allOf` of several schemas, a keyword it does not know), it says the change breaks: a
false alarm costs a version bump, a missed one costs a consumer. It knows nothing about
microcred.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

Schema = dict[str, Any] | bool

# Keywords that describe but never constrain: changing them is never breaking.
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
    "$comment", "$schema", "$id", "$anchor", "$defs", "definitions", "discriminator",
    "contentMediaType", "contentEncoding",
})
# Keywords this module reasons about; any other one that differs counts as breaking.
UNDERSTOOD = frozenset({
    "$ref", "anyOf", "oneOf", "type", "enum", "const", "format",
    "minLength", "maxLength", "pattern",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "properties", "required", "additionalProperties", "patternProperties",
    "minProperties", "maxProperties", "propertyNames",
    "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains",
})
JSON_TYPES = ("null", "boolean", "object", "array", "number", "string")


@dataclass(frozen=True)
class Change:
    """One reason why a payload valid under the old schema could fail under the new one (or
    a consumer of the old schema could miss a field). `path` is the field, dotted."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '(payload)'}: {self.reason}"


def breaking_changes(old: Schema, new: Schema) -> list[Change]:
    """Every change from `old` to `new` that would break an existing producer or consumer;
    empty when `new` is a compatible evolution of `old` (or equal to it)."""
    checker = _Checker(old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {})
    checker.subsumes(old, new, "")
    return list(dict.fromkeys(checker.changes))  # one line per distinct change, in order


def is_compatible(old: Schema, new: Schema) -> bool:
    return not breaking_changes(old, new)


class _Checker:
    def __init__(self, old_root: dict[str, Any], new_root: dict[str, Any]) -> None:
        self.old_root, self.new_root = old_root, new_root
        self.changes: list[Change] = []
        self._active: set[tuple[str, str]] = set()  # (old ref, new ref) being compared

    def fail(self, path: str, reason: str) -> None:
        self.changes.append(Change(path, reason))

    # --- the entry point: every instance of `old` is an instance of `new` ------------------

    def subsumes(self, old: Schema, new: Schema, path: str) -> None:
        old_refs, old = _deref(old, self.old_root)
        new_refs, new = _deref(new, self.new_root)
        key = (old_refs, new_refs)
        if old_refs and new_refs:
            if key in self._active:  # a recursive schema: the pair is being compared already
                return
            self._active.add(key)
        try:
            self._subsumes(old, new, path)
        finally:
            self._active.discard(key)

    def _subsumes(self, old: Schema, new: Schema, path: str) -> None:
        if old is False or new is True or _unconstrained(new):
            return
        if new is False:
            self.fail(path, "no value is accepted any more")
            return
        if old is True:
            old = {}
        assert isinstance(old, dict) and isinstance(new, dict)
        old_branches = list(_branches(old, self.old_root))
        new_branches = list(_branches(new, self.new_root))
        for branch in old_branches:
            self._branch_in_union(branch, new_branches, path)

    def _branch_in_union(self, old: dict[str, Any], news: list[dict[str, Any]],
                         path: str) -> None:
        """One alternative of the old schema is accepted by some alternative of the new."""
        if len(news) == 1:
            self._branch(old, news[0], path)
            return
        best: list[Change] | None = None
        for new in _ranked(old, news):
            trial = _Checker(self.old_root, self.new_root)
            trial._active = set(self._active)
            trial._branch(old, new, path)
            if not trial.changes:
                return
            if best is None:
                best = trial.changes
        self.changes.extend(best or [Change(path, "no alternative of the new schema accepts "
                                               f"{_describe(old)}")])

    # --- one alternative against one alternative ------------------------------------------

    def _branch(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        if _unconstrained(new):
            return
        values = _finite_values(old)
        if values is not None:  # an enum, a const, null or boolean: try each value
            self._values(values, old, new, path)
            return
        if "enum" in new or "const" in new:
            self.fail(path, f"restricted to {_values_text(new)} (was {_describe(old)})")
            return
        old_types, new_types = _types(old), _types(new)
        if new_types is not None:
            if old_types is None:
                self.fail(path, f"now limited to type {_join(new_types)} (any type before)")
                return
            lost = [t for t in old_types if not _type_in(t, new_types)]
            if lost:
                self.fail(path, f"type changed from {_join(old_types)} to {_join(new_types)}")
                return
        self._format(old, new, path)
        types = old_types or set(JSON_TYPES)
        if "string" in types:
            self._string(old, new, path)
        if types & {"number", "integer"}:
            self._number(old, new, path)
        if "object" in types:
            self._object(old, new, path)
        if "array" in types:
            self._array(old, new, path)
        for keyword in sorted(set(new) - ANNOTATIONS - UNDERSTOOD):
            if new[keyword] != old.get(keyword):
                self.fail(path, f"keyword {keyword!r} changed (not understood: assumed "
                                "breaking)")

    def _values(self, values: list[Any], old: dict[str, Any], new: dict[str, Any],
                path: str) -> None:
        formats = Draft202012Validator.FORMAT_CHECKER
        validator = Draft202012Validator({**new, "$defs": self.new_root.get("$defs", {})},
                                         format_checker=formats)
        old_validator = Draft202012Validator({**old, "$defs": self.old_root.get("$defs", {})},
                                             format_checker=formats)
        refused = [v for v in values if old_validator.is_valid(v) and not validator.is_valid(v)]
        if refused:
            self.fail(path, "no longer accepts " + ", ".join(_show(v) for v in refused))

    def _format(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        if "format" in new and new["format"] != old.get("format"):
            was = f"format {old['format']!r}" if "format" in old else "no format"
            self.fail(path, f"format {new['format']!r} required (was {was})")

    def _string(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        if new.get("minLength", 0) > old.get("minLength", 0):
            self.fail(path, f"minLength raised from {old.get('minLength', 0)} to "
                            f"{new['minLength']}")
        if new.get("maxLength", math.inf) < old.get("maxLength", math.inf):
            self.fail(path, f"maxLength lowered from {_num(old.get('maxLength'))} to "
                            f"{new['maxLength']}")
        if "pattern" in new and new["pattern"] != old.get("pattern"):
            was = f"{old['pattern']!r}" if "pattern" in old else "none"
            self.fail(path, f"pattern {new['pattern']!r} required (was {was})")

    def _number(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_low, new_low = _bound(old, "minimum", "exclusiveMinimum", -1), \
            _bound(new, "minimum", "exclusiveMinimum", -1)
        if _tighter_low(old_low, new_low):
            self.fail(path, f"lower bound raised from {_bound_text(old_low, '>')} to "
                            f"{_bound_text(new_low, '>')}")
        old_high, new_high = _bound(old, "maximum", "exclusiveMaximum", 1), \
            _bound(new, "maximum", "exclusiveMaximum", 1)
        if _tighter_high(old_high, new_high):
            self.fail(path, f"upper bound lowered from {_bound_text(old_high, '<')} to "
                            f"{_bound_text(new_high, '<')}")
        if "multipleOf" in new:
            step = old.get("multipleOf")
            if step is None or not _is_multiple(step, new["multipleOf"]):
                self.fail(path, f"multipleOf {new['multipleOf']} required (was "
                                f"{step if step is not None else 'none'})")

    def _object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_props: dict[str, Schema] = old.get("properties", {})
        new_props: dict[str, Schema] = new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name, schema in old_props.items():
            where = _join_path(path, name)
            if name not in new_props:
                self.fail(where, "field removed")
                continue
            self.subsumes(schema, new_props[name], where)
        for name in sorted(new_required - old_required):
            where = _join_path(path, name)
            self.fail(where, "optional field made required" if name in old_props
                      else "new required field")
        for name in sorted(set(new_props) - set(old_props)):
            # Under the old schema this key was an extra one: whatever it allowed for extras
            # must pass the new field's schema (nothing, if extras were forbidden).
            self.subsumes(_extra_schema(old, name), new_props[name], _join_path(path, name))
        if "patternProperties" in new and new["patternProperties"] != old.get(
                "patternProperties"):
            self.fail(path, "patternProperties changed (assumed breaking)")
        if "propertyNames" in new and new["propertyNames"] != old.get("propertyNames"):
            self.fail(path, "propertyNames constrained (assumed breaking)")
        old_extra, new_extra = old.get("additionalProperties", True), \
            new.get("additionalProperties", True)
        if old_extra is not False and new_extra is False:
            self.fail(path, "additional properties no longer allowed")
        elif old_extra is not False:
            self.subsumes(old_extra, new_extra, _join_path(path, "*"))
        self._counts(old, new, path, "minProperties", "maxProperties", "properties")

    def _array(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_prefix: list[Schema] = old.get("prefixItems", [])
        new_prefix: list[Schema] = new.get("prefixItems", [])
        old_items, new_items = old.get("items", True), new.get("items", True)
        for i in range(max(len(old_prefix), len(new_prefix))):
            before = old_prefix[i] if i < len(old_prefix) else old_items
            after = new_prefix[i] if i < len(new_prefix) else new_items
            self.subsumes(before, after, f"{path}[{i}]")
        self.subsumes(old_items, new_items, f"{path}[]")
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            self.fail(path, "items must now be unique")
        if "contains" in new and new["contains"] != old.get("contains"):
            self.fail(path, "contains changed (assumed breaking)")
        self._counts(old, new, path, "minItems", "maxItems", "items")

    def _counts(self, old: dict[str, Any], new: dict[str, Any], path: str, low: str,
                high: str, what: str) -> None:
        if new.get(low, 0) > old.get(low, 0):
            self.fail(path, f"at least {new[low]} {what} required (was {old.get(low, 0)})")
        if new.get(high, math.inf) < old.get(high, math.inf):
            self.fail(path, f"at most {new[high]} {what} allowed (was "
                            f"{_num(old.get(high))})")


# --- helpers over one schema ----------------------------------------------------------------


def _deref(schema: Schema, root: dict[str, Any]) -> tuple[str, Schema]:
    """Follow `$ref` chains (local `#/...` pointers) and merge sibling keywords; returns the
    refs followed (for cycle detection) and the schema reached."""
    seen: list[str] = []
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            raise ValueError(f"$ref cycle without a schema: {' -> '.join(seen)}")
        seen.append(ref)
        target = _pointer(root, ref)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        if not rest or target is True:
            schema = target if not rest else rest
        elif target is False:
            schema = False
        elif any(k in target for k in rest if k not in ANNOTATIONS):
            schema = {"allOf": [target, rest]}  # both constrain: keep them apart
        else:
            schema = {**target, **rest}
    while isinstance(schema, dict) and "allOf" in schema and len(schema["allOf"]) == 1:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        _, only = _deref(schema["allOf"][0], root)
        if not isinstance(only, dict):
            schema = only
        elif set(only) & set(rest) - ANNOTATIONS:
            break
        else:
            schema = {**only, **rest}
    return " ".join(seen), schema


def _pointer(root: dict[str, Any], ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, not {ref!r}")
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    if not isinstance(node, dict | bool):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return node


def _branches(schema: dict[str, Any], root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The alternatives of a union, each with at most one JSON type."""
    union = schema.get("anyOf", schema.get("oneOf"))
    if union is not None:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        for option in union:
            _, option = _deref(option, root)
            if option is False:
                continue
            merged = {**rest, **(option if isinstance(option, dict) else {})}
            yield from _branches(merged, root)
        return
    types = schema.get("type")
    if isinstance(types, list) and len(types) != 1:
        for t in types:
            yield {**schema, "type": t}
        return
    if isinstance(types, list):
        schema = {**schema, "type": types[0]}
    yield schema


def _ranked(old: dict[str, Any], news: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New alternatives, those of the old one's type first (so that the changes reported
    are the ones against the alternative a reader would compare with)."""
    old_types = _types(old) or set()
    return sorted(news, key=lambda n: not (_types(n) and old_types and
                                           all(_type_in(t, _types(n) or set())
                                               for t in old_types)))


def _types(schema: dict[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else schema["enum"]
            return {_type_of(v) for v in values}
        return None
    return {t} if isinstance(t, str) else set(t)


def _type_in(t: str, types: Iterable[str]) -> bool:
    types = set(types)
    return t in types or (t == "integer" and "number" in types)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _finite_values(schema: dict[str, Any]) -> list[Any] | None:
    """The only values a schema accepts, when there are few: enum, const, null, boolean."""
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    if schema.get("type") == "null":
        return [None]
    if schema.get("type") == "boolean":
        return [True, False]
    return None


def _unconstrained(schema: Schema) -> bool:
    return schema is True or (isinstance(schema, dict) and not set(schema) - ANNOTATIONS)


def _extra_schema(schema: dict[str, Any], name: str) -> Schema:
    """What an object schema allows for a key it does not name."""
    for pattern, sub in schema.get("patternProperties", {}).items():
        if re.search(pattern, name) and isinstance(sub, dict | bool):
            return sub
    extra = schema.get("additionalProperties", True)
    return extra if isinstance(extra, dict | bool) else True


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str,
           sign: int) -> tuple[float, bool]:
    """(value, is_exclusive) of the tightest lower (sign -1) or upper (sign 1) bound."""
    value: float = sign * math.inf
    strict = False
    if inclusive in schema:
        value = schema[inclusive]
    if exclusive in schema and isinstance(schema[exclusive], int | float) \
            and not isinstance(schema[exclusive], bool):
        other = schema[exclusive]
        if (sign < 0 and other >= value) or (sign > 0 and other <= value):
            value, strict = other, True
    return value, strict


def _tighter_low(old: tuple[float, bool], new: tuple[float, bool]) -> bool:
    return new[0] > old[0] or (new[0] == old[0] and new[1] and not old[1])


def _tighter_high(old: tuple[float, bool], new: tuple[float, bool]) -> bool:
    return new[0] < old[0] or (new[0] == old[0] and new[1] and not old[1])


def _is_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return math.isclose(ratio, round(ratio))


def _bound_text(bound: tuple[float, bool], op: str) -> str:
    if math.isinf(bound[0]):
        return "none"
    return f"{op if bound[1] else op + '='} {_num(bound[0])}"


def _num(value: float | None) -> str:
    return "none" if value is None or (isinstance(value, float) and math.isinf(value)) \
        else str(value)


def _join(types: Iterable[str]) -> str:
    return "|".join(sorted(types))


def _join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _values_text(schema: dict[str, Any]) -> str:
    values = [schema["const"]] if "const" in schema else schema["enum"]
    return "{" + ", ".join(_show(v) for v in values) + "}"


def _describe(schema: dict[str, Any]) -> str:
    types = _types(schema)
    return f"any {_join(types)}" if types else "any value"
