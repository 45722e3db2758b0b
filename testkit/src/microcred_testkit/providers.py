"""Helpers for tests and the demo around onboarding: provider and definition documents,
the operator's admin client, and a provider publishing over Kafka with its own SASL/SCRAM
principal on its own results topic. No pytest import."""

from __future__ import annotations

from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from microcred_shared.contract.cloudevents import encode
from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_testkit.backbone import provider_headers


def provider_doc(provider_id: str, *, kind: str = "employer", jurisdiction: str = "CA-ON",
                 name_fr: str | None = None) -> dict[str, Any]:
    return {
        "id": provider_id,
        "name": {"en": f"Provider {provider_id}", "fr": name_fr or f"Fournisseur {provider_id}"},
        "kind": kind, "jurisdiction": jurisdiction,
        "url": f"https://{provider_id}.example", "email": f"credentials@{provider_id}.example",
        "quality_assurance": {"type": "Industry standard review", "body": "Sector board",
                              "status": "endorsed"},
        "contact": {"name": "Registrar", "email": f"registrar@{provider_id}.example"},
    }


def definition_doc(definition_id: str, provider_id: str, *, title: str = "Forklift Safety",
                   co_issuers: tuple[str, ...] = (), min_score: float | None = None,
                   stack: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": definition_id, "provider_id": provider_id,
        "title": {"en": title, "fr": f"{title} (FR)"},
        "description": {"en": f"{title}: practical skills.", "fr": "Compétences pratiques."},
        "learning_outcomes": [{"en": "Operate safely.", "fr": "Opérer en sécurité."}],
        "assessment_method": {"en": "Observed practical test."},
        "assessment_type": "practical demonstration",
        "workload": {"hours": 8}, "participation_form": "onsite", "language": "en",
        "partners": [{"role": "co-issuer", "provider_id": p, "name": {"en": p}}
                     for p in co_issuers],
    }
    if stack is not None:
        doc["stack"] = stack
    elif min_score is not None:
        doc["pass_rule"] = {"kind": "score", "min_score": min_score, "max_score": 100}
    else:
        doc["pass_rule"] = {"kind": "pass_fail"}
    return doc


class Admin:
    """The operator's client for assessment's admin API."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=60,
                                        headers={"authorization": f"Bearer {token}"})

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = None,
                   **params: Any) -> Any:
        r = await self.client.request(method, path, json=body, params=params or None)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    async def onboard(self, provider_id: str, **kw: Any) -> str:
        """Create a provider and return a fresh API key for it."""
        await self.call("POST", "/v1/admin/providers", provider_doc(provider_id, **kw), 201)
        out = await self.call("POST", f"/v1/admin/providers/{provider_id}/api-keys",
                              expect=201)
        return str(out["api_key"])

    async def audit(self, provider: str, **params: Any) -> list[dict[str, Any]]:
        out = await self.call("GET", "/v1/admin/audit", expect=200, provider=provider,
                              **params)
        return list(out["entries"])


class SaslPublisher:
    """A provider publishing straight onto Kafka as its own SCRAM principal."""

    def __init__(self, bootstrap: str, username: str, password: str, topic: str) -> None:
        self.topic = topic
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=username,
            sasl_plain_password=password, acks="all", request_timeout_ms=10_000)

    async def __aenter__(self) -> SaslPublisher:
        try:
            await self.producer.start()
        except BaseException:
            await self.producer.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def publish(self, event: AssessmentResultSubmitted, *, topic: str | None = None,
                      source: str | None = None) -> None:
        await self.producer.send_and_wait(topic or self.topic, encode(event), key=event.key(),
                                          headers=provider_headers(event, source=source))
