"""Operators scrape every service (ADR 17): after a result goes through, each service's
/metrics shows the records it applied, what its relay published, its outbox backlog and
consumer lag, and assessment's HTTP ingest by route template — and no personal data."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from microcred_shared.contract import topics
from microcred_shared.contract.events import learner_key
from microcred_testkit.backbone import ProviderPublisher, eventually, learner, result

pytestmark = pytest.mark.integration


async def scrape(bb, service: str) -> dict[str, list]:
    async with bb.http(service) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: dict[str, list] = {"_text": [r.text]}
    for family in text_string_to_metric_families(r.text):
        samples.setdefault(family.name, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(families: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in families.get(name, [])
               if all(s.labels.get(k) == v for k, v in labels.items()))


async def test_each_service_reports_its_work_and_nothing_personal(backbone):
    who = learner(f"metrics-{uuid.uuid4().hex[:6]}")
    before = await scrape(backbone, "issuance")
    done_before = value(before, "microcred_consumer_applied_total",
                        subscription=topics.DECISIONS)
    async with backbone.http("assessment", backbone.api_keys["lakeshore-college"]) as client:
        r = await client.post("/v1/assessment-results", content=result(
            "lakeshore-college", "lakeshore-data-analytics-fundamentals", who=who,
            score=90).model_dump_json(), headers={"content-type": "application/json"})
    assert r.status_code == 202
    async with backbone.http("registry", backbone.operator_token) as client:
        await eventually(lambda: _count(client, who.email), lambda n: n >= 1)

    assessment = await scrape(backbone, "assessment")
    assert value(assessment, "microcred_http_request_seconds_count", method="POST",
                 route="/v1/assessment-results", status="202") >= 1
    # Decided at the door (ADR 40): assessment's results consumer applies what providers
    # publish over Kafka.
    async with ProviderPublisher(backbone.bootstrap) as kafka:
        await kafka.publish(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                                   who=learner(f"metrics-k-{uuid.uuid4().hex[:6]}"), score=90))
    assessment = await eventually(lambda: scrape(backbone, "assessment"), lambda m: value(
        m, "microcred_consumer_applied_total", subscription=topics.RESULTS) >= 1)
    assert value(assessment, "microcred_consumer_applied_total",
                 subscription=topics.RESULTS) >= 1
    issuance = await scrape(backbone, "issuance")
    assert value(issuance, "microcred_consumer_applied_total",
                 subscription=topics.DECISIONS) > done_before
    # The learner's mail goes through notify's real delivery worker and SMTP relay.
    notify = await eventually(lambda: scrape(backbone, "notify"),
                              lambda m: value(m, "microcred_mail_delivered_total") >= 1)
    assert value(notify, "microcred_mail_delivered_total") >= 1
    for name in ("microcred_mail_attempts_failed_total", "microcred_mail_dead_lettered_total",
                 "microcred_webhook_delivered_total", "microcred_webhook_dead_lettered_total",
                 "microcred_webhook_endpoints_disabled_total"):
        assert name in notify, name
    for service in ("assessment", "issuance", "registry", "notify"):
        m = await scrape(backbone, service)
        assert value(m, "microcred_outbox_published_total") >= 1, service
        assert "microcred_outbox_backlog" in m and "microcred_consumer_lag" in m
        assert any(s.labels.get("subscription") for s in m["microcred_consumer_lag"]), service
        text = m["_text"][0]
        assert who.email not in text and learner_key(who.email) not in text
        assert backbone.operator_token not in text


async def _count(client, email: str) -> int:
    r = await client.get(f"/v1/learners/{learner_key(email)}/credentials")
    return r.json()["count"]
