"""Open Badges 3.0 JSON Schema validation, offline.

The 1EdTech AchievementCredential schema (array-only `proof`/`evidence` variant) is
vendored as package data; its references are all internal, and the registry below
refuses to fetch anything else.

Two validators of the same schema: jsonschema-rs (compiled, ~20x faster) accepts a
conforming credential, the common case; a credential it does not accept is validated by
jsonschema, which says what is wrong in its own words (the problems reported, and
whether there are any, are jsonschema's). The compiled one is only ever trusted to say
"conforms", so it must never accept what jsonschema refuses: its copy of the schema is
made no more lenient (see `_fast_validator`), formats are annotations in both, and
tests/vc/test_schema_split.py compares the two on hundreds of broken credentials.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft201909Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

OB_TYPES = frozenset({"OpenBadgeCredential", "AchievementCredential"})


def _no_fetch(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # offline: every schema we use is vendored


@cache
def _validator() -> Draft201909Validator:
    text = (resources.files(__package__) / "schema" / "achievementcredential.json").read_text(
        "utf-8")
    schema = json.loads(text)
    registry: Registry[Any] = Registry(retrieve=_no_fetch).with_resource(  # type: ignore[call-arg]
        schema["$id"], Resource.from_contents(schema))
    return Draft201909Validator(schema, registry=registry)


@cache
def _fast_validator() -> jsonschema_rs.Draft201909Validator:
    """The schema compiled by jsonschema-rs. Its copy writes the patterns' `\\d` as
    `[0-9]`: Python's `\\d` matches any Unicode decimal digit (of Python's Unicode
    version), and whatever the Rust engine's `\\d` means now or in a later release, ASCII
    digits are digits to both, so the copy never matches where Python would not. (`$` is
    stricter in Rust: it does not match before a final newline. Stricter is safe:
    jsonschema then decides.) Formats are not asserted, as jsonschema does not without a
    format checker."""
    return jsonschema_rs.Draft201909Validator(_ascii_digits(_root()), validate_formats=False,
                                              retriever=_no_fetch_rs)


_DIGIT = re.compile(r"(?<!\\)((?:\\\\)*)\\d")  # a `\d` escape, not an escaped backslash + d


def _ascii_digits(node: Any, key: str | None = None) -> Any:
    """A copy of the schema whose `pattern`s say `[0-9]` where they say `\\d`."""
    if isinstance(node, dict):
        return {k: _ascii_digits(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_ascii_digits(v) for v in node]
    if key == "pattern" and isinstance(node, str):
        return _DIGIT.sub(r"\1[0-9]", node)
    return node


def _no_fetch_rs(uri: str) -> Any:
    raise ValueError(f"offline: {uri} is not fetched")


def _conforms(shaped: list[dict[str, Any]]) -> bool:
    """Whether the compiled validator accepts every schema-shaped copy; False when it
    cannot say (a value it cannot convert, e.g. NaN or a huge integer): jsonschema decides."""
    try:
        validator = _fast_validator()
        return all(validator.is_valid(copy) for copy in shaped)
    except Exception:  # noqa: BLE001 - anything it cannot take is left to jsonschema
        return False


def is_open_badge(document: dict[str, Any]) -> bool:
    types = document.get("type")
    return any(isinstance(t, str) and t in OB_TYPES
               for t in (types if isinstance(types, list) else [types]))


def _as_schema_shape(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The document in the shape this schema variant wants, one copy per status entry.

    In JSON-LD `proof`, `evidence` and `credentialStatus` are sets, and one value may be
    written bare or in an array. This schema variant wants `proof`/`evidence` as arrays and
    `credentialStatus` as one object; only the JSON shape differs, so it is normalized
    here rather than failing credentials from issuers that write a bare proof object.
    """
    shaped = dict(document)
    for key in ("proof", "evidence"):
        if isinstance(shaped.get(key), dict):
            shaped[key] = [shaped[key]]
    status = shaped.get("credentialStatus")
    if isinstance(status, list) and status:
        return [{**shaped, "credentialStatus": entry} for entry in status]
    return [shaped]


# Validation is a pure function of (subschema, JSON value), and most of a credential is the
# same for every credential of a definition (issuer profile, achievement, contexts): object
# nodes whose schema only constrains their own shape (`type`, `required`, `properties`,
# `additionalProperties: true`; every node of the OB 3.0 schema down to the achievement) are
# checked keyword by keyword here, and their properties' values, each validated whole by
# jsonschema, are remembered by their JSON digest. The problems are the same, in the same
# words, as validating the whole document at once.
_SHAPE_ONLY = frozenset({"type", "properties", "required", "additionalProperties",
                         "description", "$comment", "title", "$schema", "$id", "$defs"})
_SPLIT_DEPTH = 3
_MEMO: OrderedDict[tuple[int, str], list[tuple[tuple[Any, ...], str]]] = OrderedDict()
MEMO_SIZE = 4096
Found = list[tuple[tuple[Any, ...], str]]  # (path below the node, message)


def _root() -> dict[str, Any]:
    schema = _validator().schema
    assert isinstance(schema, dict)
    return schema


def _resolved(node: Any) -> Any:
    """A node that is only a local `$ref` (with annotations) is the node it names."""
    defs = _root().get("$defs", {})
    while (isinstance(node, dict) and isinstance(node.get("$ref"), str)
           and set(node) <= {"$ref", "description", "$comment"}
           and node["$ref"].startswith("#/$defs/") and node["$ref"][8:] in defs):
        node = defs[node["$ref"][8:]]
    return node


def _errors(value: Any, node: Any) -> Found:
    return [(tuple(e.path), e.message) for e in _validator().evolve(schema=node).iter_errors(
        value)]


def _remembered(value: Any, node: Any) -> Found:
    try:
        key = (id(node), hashlib.sha256(json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()).hexdigest())
    except (TypeError, ValueError):  # not JSON: validate it as it is
        return _errors(value, node)
    found = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _errors(value, node)
        if len(_MEMO) > MEMO_SIZE:
            _MEMO.popitem(last=False)
    else:
        _MEMO.move_to_end(key)
    return found


def _node_errors(value: Any, node: Any, depth: int) -> Found:
    node = _resolved(node)
    if not (depth < _SPLIT_DEPTH and isinstance(value, dict) and isinstance(node, dict)
            and set(node) <= _SHAPE_ONLY and node.get("type") == "object"
            and node.get("additionalProperties", True) is True):
        return _remembered(value, node)
    found = _errors(value, {k: node[k] for k in ("type", "required") if k in node})
    for name, sub in node.get("properties", {}).items():
        if name in value:
            found += [((name, *path), message)
                      for path, message in _node_errors(value[name], sub, depth + 1)]
    return found


def _problems(found: Found, prefix: tuple[str, ...], problems: list[str]) -> None:
    for path, message in sorted(found, key=lambda e: list(e[0])):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in (*prefix, *path))
        problem = f"${where}: {message}"
        if problem not in problems:
            problems.append(problem)


def schema_problems(document: dict[str, Any]) -> list[str]:
    """Where `document` breaks the OB 3.0 AchievementCredential schema (empty: conforms).

    The copies of one document differ only in `credentialStatus`, and the schema's top
    level relates no property to another: the first copy is validated whole, each further
    status entry against the `credentialStatus` property alone."""
    copies = _as_schema_shape(document)
    if _conforms(copies):
        return []
    problems: list[str] = []
    first, *others = copies
    root = _root()
    _problems(_node_errors(first, root, 0), (), problems)
    for shaped in others:
        _problems(_node_errors(shaped["credentialStatus"],
                               root["properties"]["credentialStatus"], 1),
                  ("credentialStatus",), problems)
    return problems
