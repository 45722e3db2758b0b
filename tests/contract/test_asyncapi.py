"""docs/asyncapi.yaml is the document the code generates, a maintained AsyncAPI parser
(@asyncapi/parser, tests/contract/package.json) finds no error and no warning in it, and it
matches the topic map: every topic is a channel, every producer and consumer of
`topics.SERVICE_TOPICS` an operation, every payload the event's kept JSON Schema.

Fix a stale file: `uv run python -m microcred_shared.contract.tools asyncapi --write`."""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from microcred_shared.contract import asyncapi, topics
from microcred_shared.contract import schemas as event_schemas
from microcred_shared.contract import tools as contract_tools
from microcred_shared.contract.cloudevents import Envelope, header_map, new_envelope, parse_envelope
from microcred_shared.contract.events import AssessmentResultSubmitted, learner_key

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEPT = ROOT / "docs" / "asyncapi.yaml"
DOC = asyncapi.document()


def run_parser(path: Path) -> dict[str, Any]:
    """Fail (never skip) with the setup step when the parser is missing."""
    if shutil.which("node") is None:
        pytest.fail("the AsyncAPI check needs Node.js 20+ on PATH")
    if not (HERE / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("tests/contract/node_modules is missing: run `make install` "
                    "(npm ci --prefix tests/contract)")
    done = subprocess.run(["node", "validate_asyncapi.mjs", str(path)], cwd=HERE,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"validate_asyncapi.mjs failed: {done.stderr}")
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


@cache
def parsed_kept() -> dict[str, Any]:
    return run_parser(KEPT)


def problems(parsed: dict[str, Any], *severities: str) -> list[str]:
    return [f"{d['severity']} {d['code']} at {d['path']}: {d['message']}"
            for d in parsed["diagnostics"] if d["severity"] in severities]


# --- the kept file ---------------------------------------------------------------------------


def test_the_kept_document_is_the_one_the_code_generates() -> None:
    assert KEPT.read_text("utf-8") == asyncapi.to_yaml(DOC), (
        "docs/asyncapi.yaml differs from the code: run "
        "`uv run python -m microcred_shared.contract.tools asyncapi --write`")
    assert yaml.safe_load(KEPT.read_text("utf-8")) == json.loads(asyncapi.to_json(DOC))


def test_the_asyncapi_parser_finds_no_error_and_no_warning() -> None:
    parsed = parsed_kept()
    assert parsed["parsed"], problems(parsed, "error")
    assert problems(parsed, "error", "warning") == []


def test_the_parser_does_report_a_broken_document(tmp_path: Path) -> None:
    broken = copy.deepcopy(DOC)
    broken["operations"]["partner.sends.assessmentResultsProvider"]["action"] = "publish"
    broken["channels"]["assessmentDecisions"]["messages"]["AssessmentDecided"]["$ref"] = \
        "#/components/messages/NoSuchMessage"
    path = tmp_path / "broken.yaml"
    path.write_text(asyncapi.to_yaml(broken))
    assert problems(run_parser(path), "error")


# --- it matches the topic map ----------------------------------------------------------------


def test_every_topic_and_its_dead_letters_are_a_channel() -> None:
    addresses = {c["address"] for c in parsed_kept()["channels"]}
    assert set(topics.all_topics()) <= addresses
    provider = "microcred.assessment.results.{provider}.v1"
    assert {provider, topics.dlq(provider)} <= addresses
    assert addresses - set(topics.all_topics()) == {provider, topics.dlq(provider)}
    for channel in parsed_kept()["channels"]:
        if "{provider}" in channel["address"]:
            assert channel["parameters"] == ["provider"]


def test_the_provider_channel_is_the_pattern_assessment_subscribes_to() -> None:
    address = DOC["channels"]["assessmentResultsProvider"]["address"]
    topic = address.replace("{provider}", "lakeshore-college")
    assert topic == topics.provider_results("lakeshore-college")
    assert re.match(topics.PROVIDER_RESULTS_PATTERN, topic)
    assert address.startswith(topics.PROVIDER_RESULTS_PREFIX)


def test_compacted_topics_say_so_in_their_kafka_binding() -> None:
    for cid, channel in DOC["channels"].items():
        config = channel["bindings"]["kafka"].get("topicConfiguration", {})
        compacted = channel["address"] in topics.compacted_topics()
        assert (config.get("cleanup.policy") == ["compact"]) == compacted, cid


def _operations(service: str, action: str) -> set[str]:
    return {address for op in parsed_kept()["operations"] if op["action"] == action
            and service in op["tags"] for address in op["channels"]}


@pytest.mark.parametrize("service", sorted(topics.SERVICE_TOPICS))
def test_every_producer_and_consumer_of_the_topic_map_is_an_operation(service: str) -> None:
    access = topics.SERVICE_TOPICS[service]
    received = set(access.consumes)
    if access.consumes_prefixed:
        received.add("microcred.assessment.results.{provider}.v1")
    assert _operations(service, "receive") == received
    dead_letters = {topics.dlq(t) for t in received}
    assert _operations(service, "send") == set(access.produces) | dead_letters


def test_a_partner_sends_to_its_own_topic_and_reads_its_dead_letters() -> None:
    assert _operations("partner", "send") == {"microcred.assessment.results.{provider}.v1"}
    assert _operations("partner", "receive") == \
        {"microcred.assessment.results.{provider}.v1.dlq"}


def test_every_event_type_travels_on_some_topic() -> None:
    on_topics = {cls for classes in asyncapi.TOPIC_EVENTS.values() for cls in classes}
    assert on_topics == set(event_schemas.event_types().values())
    assert set(asyncapi.TOPIC_EVENTS) == {t for t in topics.all_topics()
                                          if not t.endswith(topics.DLQ_SUFFIX)}


def _service_calls() -> list[ast.Call]:
    trees = [ast.parse(p.read_text()) for p in sorted(ROOT.glob("services/*/src/**/*.py"))]
    return [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _topic(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "topics":
        value = getattr(topics, node.attr, None)
        return value if isinstance(value, str) else None
    return None


def test_the_topics_carry_the_event_types_the_services_subscribe_and_publish_with() -> None:
    names = {t: {c.__name__ for c in cs} for t, cs in asyncapi.TOPIC_EVENTS.items()}
    provider_names = {c.__name__ for c in asyncapi.PROVIDER_RESULTS_EVENTS}
    event_names = {c.__name__ for c in event_schemas.event_types().values()}
    checked = 0
    for call in _service_calls():
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "subscribe" and len(call.args) >= 3 and isinstance(call.args[2], ast.Name):
            expected = call.args[2].id
            topic = _topic(call.args[0])
            if any(k.arg == "pattern" for k in call.keywords):
                assert expected in provider_names, ast.unparse(call)
            else:
                assert topic and expected in names[topic], ast.unparse(call)
            checked += 1
        elif name == "event_record" and len(call.args) >= 2 and (topic := _topic(call.args[0])) \
                and isinstance(call.args[1], ast.Call) \
                and getattr(call.args[1].func, "id", None) in event_names:
            assert isinstance(call.args[1].func, ast.Name)
            assert call.args[1].func.id in names[topic], ast.unparse(call)
            checked += 1
    assert checked >= 15  # the services' subscriptions were found at all


# --- messages --------------------------------------------------------------------------------


def _inline(node: Any, root: dict[str, Any]) -> Any:
    """A schema with every local $ref replaced by its target (no recursion in events)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(target, root), **_inline(rest, root)}
        return {k: _inline(v, root) for k, v in node.items() if k not in ("$defs", "$schema")}
    if isinstance(node, list):
        return [_inline(v, root) for v in node]
    return node


@pytest.mark.parametrize("ce_type", sorted(event_schemas.event_types()))
def test_each_message_carries_the_kept_schema_and_its_ce_type(ce_type: str) -> None:
    cls = event_schemas.event_types()[ce_type]
    message = DOC["components"]["messages"][cls.__name__]
    snapshot = json.loads((ROOT / event_schemas.SNAPSHOT_DIR / f"{ce_type}.json").read_text())
    assert _inline(message["payload"], DOC) == _inline(snapshot, snapshot)
    assert message["headers"]["properties"]["ce_type"]["const"] == ce_type
    assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_the_headers_the_backbone_writes_fit_the_headers_schema() -> None:
    example = asyncapi.RESULT_EXAMPLE
    event = AssessmentResultSubmitted.model_validate(example["payload"])
    schema = DOC["components"]["messages"]["AssessmentResultSubmitted"]["headers"]
    envelope = new_envelope(event, "/providers/lakeshore-college")
    traced = Envelope(**{**envelope.__dict__,
                         "traceparent": example["headers"]["traceparent"]})
    jsonschema.validate(header_map(traced.headers()), schema,
                        format_checker=jsonschema.FormatChecker())
    wrong = {**header_map(traced.headers()), "ce_type": "ca.microcred.other.v1"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


def test_the_partner_example_is_a_result_the_backbone_accepts() -> None:
    example = DOC["components"]["messages"]["AssessmentResultSubmitted"]["examples"][0]
    envelope = parse_envelope([(k, v.encode()) for k, v in example["headers"].items()])
    assert envelope.type == AssessmentResultSubmitted.ce_type
    event = AssessmentResultSubmitted.model_validate(example["payload"])
    assert event.key() == learner_key(example["payload"]["learner"]["email"]).encode()
    jsonschema.validate(example["payload"], _inline(
        DOC["components"]["schemas"]["AssessmentResultSubmitted"], DOC))


def test_the_partner_guide_names_operations_that_exist() -> None:
    guide = DOC["info"]["description"]
    named = {op for op in DOC["operations"] if f"`{op}`" in guide}
    assert named == {"partner.sends.assessmentResultsProvider",
                     "partner.receives.assessmentResultsProviderDlq"}
    assert DOC["servers"]["production"]["protocol"] == "kafka-secure"
    assert DOC["components"]["securitySchemes"]["scramSha512"]["type"] == "scramSha512"


def test_the_cli_finds_both_kept_files_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert contract_tools.main(["schemas"]) == 0
    assert contract_tools.main(["asyncapi"]) == 0
    assert contract_tools.main(["asyncapi", "--stdout", "--json"]) == 0
    out = capsys.readouterr().out
    assert "event schemas match" in out and "matches the code" in out
    assert json.loads(out[out.index("{"):])["asyncapi"] == "3.0.0"


async def test_assessment_serves_the_document_partners_build_from() -> None:
    """What `GET /asyncapi.yaml` and `.json` on assessment answer is the kept document."""
    import httpx
    import yaml

    from microcred_assessment.main import build

    app, _ = build()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://assessment") as client:
        as_yaml = await client.get("/asyncapi.yaml")
        as_json = await client.get("/asyncapi.json")
    kept = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert as_yaml.status_code == 200 and as_yaml.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(as_yaml.text) == kept
    assert as_json.json() == kept
