"""The one map of who produces and consumes which topic (topics.SERVICE_TOPICS), from which
the services' Kafka ACLs are derived (ADR 19), agrees with the code and with the docs: a new
subscription or a new event published without updating the map would be refused by the
broker in a SASL deployment, so it fails here first. Pure: the sources are parsed, not run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from microcred_shared.contract import topics

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("assessment", "issuance", "registry", "notify")
TOPIC_NAMES = {name: value for name, value in vars(topics).items()
               if name.isupper() and isinstance(value, str) and value.startswith("microcred.")}
# Helpers that write an AuditRecorded to the outbox (microcred_shared.audit, assessment.audit).
AUDIT_WRITERS = {"audit_record", "record", "record_now"}


def _sources(service: str) -> list[ast.Module]:
    src = ROOT / "services" / service / "src"
    return [ast.parse(p.read_text()) for p in sorted(src.rglob("*.py"))]


def _topic(node: ast.expr) -> str | None:
    """`topics.X` -> its value; `topics.dlq(topics.X)` -> X's dead-letter topic."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "topics" and node.attr in TOPIC_NAMES:
        return TOPIC_NAMES[node.attr]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "dlq" and node.args:
        inner = _topic(node.args[0])
        return topics.dlq(inner) if inner else None
    return None


def _calls(service: str) -> list[ast.Call]:
    return [n for tree in _sources(service) for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def subscriptions(service: str) -> tuple[set[str], set[str]]:
    """(topics, patterns) of the service's `subscribe(...)` calls."""
    named, patterns = set(), set()
    for call in _calls(service):
        if _name(call) != "subscribe" or not call.args:
            continue
        pattern = next((k.value for k in call.keywords if k.arg == "pattern"), None)
        if pattern is not None:
            assert isinstance(pattern, ast.Attribute), ast.unparse(call)
            patterns.add(getattr(topics, pattern.attr))
        else:
            topic = _topic(call.args[0])
            assert topic, f"{service}: cannot tell the topic of {ast.unparse(call)}"
            named.add(topic)
    return named, patterns


def publications(service: str) -> set[str]:
    """Topics the service writes to its outbox (or, for the shipper, straight to Kafka)."""
    out = set()
    for call in _calls(service):
        name = _name(call)
        if name == "event_record" and call.args and (t := _topic(call.args[0])):
            out.add(t)
        elif name == "Outgoing":
            for k in call.keywords:
                if k.arg == "topic" and (t := _topic(k.value)):
                    out.add(t)
        elif name in AUDIT_WRITERS and isinstance(call.func, ast.Attribute | ast.Name) \
                and (name == "audit_record" or ast.unparse(call.func).startswith("audit.")):
            out.add(topics.AUDIT)
    return out


def test_the_map_names_every_service_and_only_known_topics() -> None:
    assert set(topics.SERVICE_TOPICS) == set(SERVICES)
    known = set(topics.all_topics())
    for service, access in topics.SERVICE_TOPICS.items():
        assert set(access.consumes) | set(access.produces) <= known, service


@pytest.mark.parametrize("service", SERVICES)
def test_the_map_lists_exactly_the_topics_a_service_subscribes_to(service: str) -> None:
    named, patterns = subscriptions(service)
    access = topics.SERVICE_TOPICS[service]
    assert named == set(access.consumes)
    # A pattern subscription is granted as a PREFIXED READ: the prefix must be the pattern's.
    prefixes = {re.sub(r"\\(.)", r"\1", p.lstrip("^").split("(")[0]) for p in patterns}
    assert prefixes == set(access.consumes_prefixed)


@pytest.mark.parametrize("service", SERVICES)
def test_the_map_lists_exactly_the_topics_a_service_publishes(service: str) -> None:
    assert publications(service) == set(topics.SERVICE_TOPICS[service].produces)


def _doc_table() -> dict[str, tuple[str, str]]:
    """docs/architecture.md's topic table: topic -> (from, to), for the rows with an arrow."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Topics", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (m := re.match(r"`([^`]+)`", cells[0])) and "→" in cells[2]:
            source, sink = cells[2].split("→", 1)
            rows[m.group(1)] = (source, sink)
    return rows


def _named(text: str) -> set[str]:
    return {s for s in SERVICES if re.search(rf"\b{s}\b", text)}


def test_the_architecture_topic_table_says_the_same_as_the_map() -> None:
    table = _doc_table()
    for name in topics.all_topics():
        if name.endswith(topics.DLQ_SUFFIX):
            continue
        assert name in table, f"docs/architecture.md's topic table has no row for {name}"
        source, sink = table[name]
        producers = {s for s, a in topics.SERVICE_TOPICS.items() if name in a.produces}
        consumers = {s for s, a in topics.SERVICE_TOPICS.items() if name in a.consumes}
        assert (_named(source), _named(sink)) == (producers, consumers), name
