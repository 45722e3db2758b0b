"""schema_problems checks a credential part by part and remembers the parts it has seen
(issue 12: verification as fast as signing): the problems must be exactly those of
validating each whole document with jsonschema, for good and broken credentials alike."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from microcred_shared.vc.schema import _as_schema_shape, _conforms, _validator, schema_problems
from microcred_testkit import vc_examples as examples


def whole_document_problems(document: dict[str, Any]) -> list[str]:
    """The reference: each schema-shaped copy validated at once, as before the split."""
    problems: list[str] = []
    for shaped in _as_schema_shape(document):
        for error in sorted(_validator().iter_errors(shaped), key=lambda e: list(e.path)):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            problem = f"${where}: {error.message}"
            if problem not in problems:
                problems.append(problem)
    return problems


def paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*at, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from paths(item, (*at, n))


def parent_of(doc: Any, path: tuple[Any, ...]) -> Any:
    """The container holding the value at `path` (KeyError etc. if a mutation removed it)."""
    for step in path[:-1]:
        doc = doc[step]
    return doc


def mutated(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    where = [p for p in paths(doc) if p]
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(where)
        try:
            parent = parent_of(doc, path)
            last = path[-1]
            roll = rng.random()
            if roll < 0.3:
                del parent[last]
            elif roll < 0.6:
                parent[last] = rng.choice([7, "x", None, [], {}, True, 1.5, "2026-01-01", ["x"]])
            elif isinstance(parent[last], list):
                parent[last] = [] if rng.random() < 0.5 else parent[last] * 2
            elif isinstance(parent[last], str):
                parent[last] += "\n"
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the way there
    return doc


def test_the_problems_are_those_of_the_whole_document_for_400_broken_credentials():
    issuer = examples.ExampleIssuer()
    issuer.publish_lists()
    good = issuer.credential(3)
    assert schema_problems(good) == whole_document_problems(good) == []
    rng = random.Random(12)
    broken = 0
    for _ in range(400):
        doc = mutated(good, rng)
        expected = whole_document_problems(doc)
        assert schema_problems(doc) == expected
        assert schema_problems(doc) == expected  # and again, from what it remembered
        broken += bool(expected)
    assert broken > 150  # the mutations do break the schema, often


def test_a_second_status_entry_is_checked_on_its_own():
    issuer = examples.ExampleIssuer()
    issuer.publish_lists()
    doc = issuer.credential(4)
    doc["credentialStatus"][1]["type"] = 7
    assert schema_problems(doc) == whole_document_problems(doc) == [
        "$.credentialStatus.type: 7 is not of type 'string'"]


# Values where two validators of one schema may part ways: numbers written as floats,
# booleans next to integers, digits outside ASCII, a final newline (Python's `$` matches
# before it), values JSON cannot hold (NaN, a 70-bit integer), odd strings for patterns.
TRICKY = [1.0, 0, -0.0, True, False, 2**70, float("nan"), float("inf"), "", "\n", "en\n",
          "fr-CA", "ext:Thing", "ext:\n", "ext:é", "\u0663", "2026-01-01T00:00:00Z\n",
          "https://purl.imsglobal.org/spec/ob/v3p0/context-3.\u0660.\u0663.json",
          "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json\n", [None], [[]], {"id": 1}]


def tricky(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    where = [p for p in paths(doc) if p]
    for _ in range(rng.randint(1, 2)):
        path = rng.choice(where)
        try:
            parent_of(doc, path)[path[-1]] = copy.deepcopy(rng.choice(TRICKY))
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def test_the_compiled_validator_never_accepts_what_jsonschema_refuses():
    """A conforming credential is accepted by the compiled validator (jsonschema-rs) alone;
    anything it accepts must conform for jsonschema too, or a broken credential would pass.
    So on credentials broken in the ways two validators may disagree, the problems
    reported stay jsonschema's, and the compiled one does take the good ones."""
    issuer = examples.ExampleIssuer()
    issuer.publish_lists()
    good = issuer.credential(5)
    assert _conforms(_as_schema_shape(good))  # the fast path is taken: not a dead branch
    rng = random.Random(34)
    accepted = refused = 0
    for _ in range(600):
        doc = tricky(good, rng)
        expected = whole_document_problems(doc)
        fast = _conforms(_as_schema_shape(doc))
        assert not (fast and expected), (doc, expected)
        assert schema_problems(doc) == expected
        accepted += fast
        refused += bool(expected)
    assert accepted > 50 and refused > 150


def test_a_newline_or_a_foreign_digit_is_judged_as_jsonschema_judges_it():
    issuer = examples.ExampleIssuer()
    issuer.publish_lists()
    doc = issuer.credential(6)
    # Python's `$` matches before a final newline: jsonschema accepts this language tag.
    doc["credentialSubject"]["achievement"]["inLanguage"] = "en\n"
    assert not _conforms(_as_schema_shape(doc))  # the compiled one refuses it...
    assert schema_problems(doc) == whole_document_problems(doc) == []  # ...jsonschema decides
    # An Arabic-Indic digit is a digit to Python's `\d`, never to the compiled copy's [0-9].
    doc["@context"][1] = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.\u0660.\u0663.json"
    assert not _conforms(_as_schema_shape(doc))
    assert schema_problems(doc) == whole_document_problems(doc)
