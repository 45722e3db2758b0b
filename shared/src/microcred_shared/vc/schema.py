"""Open Badges 3.0 JSON Schema validation, offline.

The 1EdTech AchievementCredential schema (array-only `proof`/`evidence` variant) is
vendored as package data; its references are all internal, and the registry below
refuses to fetch anything else.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

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


def schema_problems(document: dict[str, Any]) -> list[str]:
    """Where `document` breaks the OB 3.0 AchievementCredential schema (empty: conforms)."""
    problems: list[str] = []
    for shaped in _as_schema_shape(document):
        for error in sorted(_validator().iter_errors(shaped), key=lambda e: list(e.path)):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            problem = f"${where}: {error.message}"
            if problem not in problems:
                problems.append(problem)
    return problems
