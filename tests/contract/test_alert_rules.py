"""The alerting rules in deploy/prometheus hold against promtool and against the code.

promtool (Debian's `prometheus` package, installed by `make install`) checks the rule file and
the scrape config and runs the rule unit tests in alerts_test.yml; a missing promtool fails
here rather than skipping. Then every metric an alert reads must be one the services export,
with the labels they give it: the names and labels come from the shared metrics module itself
(`/metrics` of an app with `microcred_shared.metrics` installed, over a stand-in runtime), from
notify's own app as its composition root wires it (the counters it adds: mail, webhooks), plus
any prometheus_client metric a service or the shared package constructs. Nothing is started
but promtool and an in-process app; nothing is fetched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from microcred_devstack.config import DEFAULT_HTTP_PORTS
from microcred_shared import metrics
from microcred_shared.contract import topics

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
ALERTS = PROM / "alerts.yml"
CONFIG = PROM / "prometheus.yml"
RULE_TESTS = PROM / "alerts_test.yml"
CODE = [ROOT / "shared" / "src", *sorted((ROOT / "services").glob("*/src"))]
# Labels Prometheus itself puts on every scraped series.
SCRAPE_LABELS = {"job", "instance"}


# --- promtool ------------------------------------------------------------------------------


def promtool(*args: str) -> None:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: `make install` installs it (Debian package "
                    "`prometheus`: apt-get install --no-install-recommends prometheus)")
    done = subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (f"promtool {' '.join(args)} failed:\n"
                                  f"{done.stdout}\n{done.stderr}")


def test_promtool_checks_the_rules() -> None:
    promtool("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_promtool_checks_the_scrape_config() -> None:
    promtool("check", "config", str(CONFIG.relative_to(ROOT)))


def test_rule_unit_tests_pass() -> None:
    promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))


# --- what the code exports -----------------------------------------------------------------


class _Consumer:
    """aiokafka's consumer as far as the lag collector asks it."""

    def assignment(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(topic=topics.RESULTS, partition=0)]

    def highwater(self, tp: object) -> int:
        return 5

    async def committed(self, tp: object) -> int:
        return 2


async def _scrape_shared_metrics() -> str:
    rt: Any = SimpleNamespace(
        engine=None, relay=SimpleNamespace(published=1),
        consumers={topics.RESULTS: SimpleNamespace(applied=1, dead_lettered=1)},
        subscribers={topics.RESULTS: SimpleNamespace(consumer=_Consumer())},
        metric_sources=[])
    api = FastAPI()
    metrics.install(api, rt)

    @api.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        assert (await client.get("/v1/things/1")).status_code == 200
        r = await client.get("/metrics")
    assert r.status_code == 200
    return r.text


async def _scrape_notify_metrics() -> str:
    """notify's app from its composition root, not started: its metric sources answer with
    zeros, which is enough to know the names and labels it exports."""
    from microcred_notify.main import build
    from microcred_notify.settings import Settings

    app, _ = build(Settings(MICROCRED_NOTIFY_SECRET_KEY="A" * 43))  # 32 zero bytes, base64url
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
        r = await client.get("/metrics")
    assert r.status_code == 200
    return r.text


# prometheus_client constructors: Counter("name", ...), GaugeMetricFamily("name", ...), ...
CONSTRUCTOR = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)(?:MetricFamily)?\(\s*(?:name\s*=\s*)?"
    r"[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']")
SUFFIXES = {"Counter": ("_total", "_created"), "Gauge": ("",), "Info": ("_info",),
            "Enum": ("",), "Histogram": ("_bucket", "_count", "_sum", "_created"),
            "Summary": ("", "_count", "_sum", "_created")}


def _constructed_names() -> Iterator[str]:
    for tree in CODE:
        for path in tree.rglob("*.py"):
            for kind, name in CONSTRUCTOR.findall(path.read_text(encoding="utf-8")):
                base = name.removesuffix("_total") if kind == "Counter" else name
                yield base
                yield from (base + suffix for suffix in SUFFIXES[kind])


@pytest.fixture(scope="module")
async def exported() -> dict[str, set[str] | None]:
    """Sample name -> its label names (None: constructed somewhere, labels not known here)."""
    text = await _scrape_shared_metrics() + await _scrape_notify_metrics()
    found: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = set(sample.labels) - {"le", "quantile"}
            known = found.setdefault(sample.name, set())
            assert known is not None
            known |= labels
    for name in _constructed_names():
        found.setdefault(name, None)
    return found


def test_the_shared_metrics_are_found(exported: dict[str, set[str] | None]) -> None:
    # Guards the two discovery paths above: if either finds nothing, the checks below are empty.
    names = exported
    assert names["microcred_consumer_lag"] == {"subscription", "topic", "partition"}
    assert names["microcred_http_request_seconds_count"] == {"method", "route", "status"}
    assert "microcred_outbox_oldest_seconds" in set(_constructed_names())
    assert names["microcred_mail_dead_lettered_total"] == set()  # notify's own
    assert names["microcred_webhook_endpoints_disabled_total"] == set()


# --- what the rules read -------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _target_labels() -> set[str]:
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    labels = set(SCRAPE_LABELS)
    for job in doc["scrape_configs"]:
        for static in job.get("static_configs", []):
            labels |= set(static.get("labels", {}))
    return labels


STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
RANGE = re.compile(r"\[[^\]]*\]")
SELECTOR = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def parse(expr: str) -> tuple[list[tuple[str, dict[str, tuple[str, str]]]], set[str]]:
    """The selectors of a PromQL expression — (metric name, {label: (op, value)}) — and the
    label names its by/without/on/ignoring/group_* clauses name."""
    matchers: list[dict[str, tuple[str, str]]] = []

    def keep(m: re.Match[str]) -> str:  # a label matcher: parse it, leave a placeholder
        matchers.append({k: (op, yaml.safe_load(v)) for k, op, v in MATCHER.findall(m[0])})
        return f"{{#{len(matchers) - 1}}}"

    text = re.sub(r"\{[^}]*\}", keep, expr)
    grouping = {label.strip() for _, labels in GROUPING.findall(text)
                for label in labels.split(",") if label.strip()}
    text = RANGE.sub(" ", GROUPING.sub(" ", STRING.sub(" ", text)))
    assert "{" not in re.sub(r"\{#\d+\}", "", text), expr
    selectors = []
    for name, braces, call in SELECTOR.findall(text):
        if call or name in KEYWORDS:
            continue  # a function or aggregation, or an operator
        index = int(braces[2:-1]) if braces else None
        selectors.append((name, matchers[index] if index is not None else {}))
    assert not re.search(r"(?<![\w.:])\{#", text), f"a selector without a metric name: {expr}"
    return selectors, grouping


def test_the_parser_finds_names_labels_and_grouping() -> None:
    selectors, grouping = parse(
        'sum by (service) (rate(x_total{status=~"5..", a="b"}[5m])) / on (service) '
        "sum without (route) (y offset 5m) > 0.05 and deriv(z[1m:10s]) > 1e3")
    assert selectors == [("x_total", {"status": ("=~", "5.."), "a": ("=", "b")}),
                         ("y", {}), ("z", {})]
    assert grouping == {"service", "route"}


def alert_selectors() -> Iterator[tuple[str, str, dict[str, tuple[str, str]], set[str]]]:
    for rule in _rules():
        selectors, grouping = parse(rule["expr"])
        assert selectors, rule["alert"]
        for name, matchers in selectors:
            yield rule["alert"], name, matchers, grouping


def test_every_metric_an_alert_reads_is_exported_with_those_labels(
        exported: dict[str, set[str] | None]) -> None:
    names, targets = exported, _target_labels()
    for alert, name, matchers, _grouping in alert_selectors():
        if name == "up":
            continue  # Prometheus's own, per target
        assert name in names, f"{alert} reads {name}, which no service exports"
        labels = names[name]
        if labels is None:
            continue
        unknown = set(matchers) - labels - targets
        assert not unknown, f"{alert} matches {name} on labels it does not have: {unknown}"
    for rule in _rules():
        selectors, grouping = parse(rule["expr"])
        available = set(targets)
        for name, _ in selectors:
            available |= names.get(name) or set()
        assert grouping <= available, f"{rule['alert']} groups by {grouping - available}"


def test_label_values_in_the_rules_are_real_services_and_subscriptions() -> None:
    subscriptions = {t for access in topics.SERVICE_TOPICS.values() for t in access.consumes}
    subscriptions.add("provider-results")  # assessment's pattern subscription (its name)
    seen = set()
    for alert, _name, matchers, _ in alert_selectors():
        for label, (op, value) in matchers.items():
            if label == "service":
                assert op in ("=", "=~"), alert
                assert set(value.split("|")) <= set(topics.SERVICE_TOPICS), alert
                seen.add(alert)
            if label == "subscription":
                assert op == "=" and value in subscriptions, f"{alert}: {value}"
    assert "MicrocredServiceDown" in seen


def test_every_rule_says_how_bad_and_what_to_do() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "MicrocredServiceDown", "MicrocredConsumerLagHigh", "MicrocredConsumerLagGrowing",
        "MicrocredDeadLettered", "MicrocredDeadLetterRateHigh", "MicrocredOutboxBacklogOld",
        "MicrocredHttp5xxRate", "MicrocredBrokerRefusals", "MicrocredMailDeliveryFailing",
        "MicrocredMailDeadLettered", "MicrocredWebhookDeliveryFailing",
        "MicrocredWebhookDeadLettered", "MicrocredWebhookEndpointDisabled"}
    tested = RULE_TESTS.read_text(encoding="utf-8")
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert f"alertname: {r['alert']}\n" in tested, f"{r['alert']} has no promtool test"


def test_the_scrape_config_reaches_every_service_at_its_default_port() -> None:
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert doc["rule_files"] == [ALERTS.name]
    scraped = {}
    for job in doc["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            for target in static["targets"]:
                scraped[static["labels"]["service"]] = int(target.rsplit(":", 1)[1])
    assert scraped == DEFAULT_HTTP_PORTS
