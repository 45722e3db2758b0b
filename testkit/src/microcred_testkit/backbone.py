"""Helpers for tests, the demo and benchmarks: result factories, a provider's Kafka
publisher, an in-process SMTP recorder and an OTLP trace collector. No pytest import."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import Envelope, encode, new_envelope
from microcred_shared.contract.events import AssessmentResultSubmitted, Learner, learner_key
from microcred_shared.db import (
    SHARED_TABLES,
    add_outbox_shard,
    create_tables,
    ensure_database,
    make_engine,
    migrate,
)
from microcred_shared.settings import database_url_for

T = TypeVar("T")


def learner(n: int | str, *, language: str = "en", domain: str = "learners.example") -> Learner:
    return Learner(id=f"s-{n}", email=f"learner{n}@{domain}", given_name="Learner",
                   family_name=f"N{n}", language=language)


def result(provider_id: str, definition_id: str, *, result_id: str | None = None,
           who: Learner | None = None, **outcome: Any) -> AssessmentResultSubmitted:
    return AssessmentResultSubmitted(
        provider_id=provider_id, result_id=result_id or f"r-{uuid.uuid4().hex[:12]}",
        definition_id=definition_id, learner=who or learner(uuid.uuid4().hex[:8]),
        assessed_at=datetime.now(UTC) - timedelta(hours=1), **outcome)


def provider_headers(event: AssessmentResultSubmitted, *, source: str | None = None,
                     event_id: str | None = None) -> list[tuple[str, bytes]]:
    env = new_envelope(event, source or f"/providers/{event.provider_id}", event_id=event_id)
    return env.headers()


class ProviderPublisher:
    """What a partner institution runs to publish results straight onto Kafka."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                          enable_idempotence=True, linger_ms=5)

    async def __aenter__(self) -> ProviderPublisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def publish(self, event: AssessmentResultSubmitted, *, source: str | None = None,
                      event_id: str | None = None) -> str:
        headers = provider_headers(event, source=source, event_id=event_id)
        await self.producer.send_and_wait(topics.RESULTS, encode(event), key=event.key(),
                                          headers=headers)
        return dict(headers)["ce_id"].decode()

    async def publish_raw(self, value: bytes | None, headers: list[tuple[str, bytes]],
                          key: bytes | None = None, topic: str = topics.RESULTS) -> None:
        await self.producer.send_and_wait(topic, value, key=key, headers=headers)

    async def publish_many(self, events: list[AssessmentResultSubmitted]) -> None:
        futures = [await self.producer.send(topics.RESULTS, encode(e), key=e.key(),
                                            headers=provider_headers(e)) for e in events]
        await asyncio.gather(*futures)


class SmtpRecorder:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it accepts."""

    def __init__(self, port: int, fail_first: int = 0, pipelining: bool = True) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.refused = 0
        self._fail_first = fail_first
        self._pipelining = pipelining  # offered by the relays mail is really sent through
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port,
                                     enable_SMTPUTF8=True)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if not self._pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]  # before the last line

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            if self.refused < self._fail_first:
                self.refused += 1
                return "451 try again later"
            self.messages.append(message_from_bytes(envelope.original_content or
                                                    envelope.content, policy=default_policy))
        return "250 OK"

    def start(self) -> SmtpRecorder:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if m["To"] == address]

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


class OtlpCollector:
    """Receives OTLP/HTTP protobuf trace exports, as a trace backend would."""

    def __init__(self, port: int) -> None:
        self.spans: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                )

                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector._add(request)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"

    def _add(self, request: Any) -> None:
        for rs in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self.spans.append({
                        "service": attrs.get("service.name"), "name": span.name,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex()})

    def start(self) -> OtlpCollector:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["trace_id"] == trace_id]


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *,
                     timeout: float = 60.0, interval: float = 0.3) -> T:  # noqa: ASYNC109
    """Poll until `done(value)`; return the last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await probe()
    return value


async def issue_over_http(bb: Any, provider: str, definition: str, who: Learner,
                          **outcome: Any) -> dict[str, Any]:
    """One result submitted over HTTP as `provider` to the running backbone `bb` (the e2e
    fixture); returns the credential it led to as the operator's listing shows it (the
    newest one the learner's listing did not show before)."""
    path = f"/v1/learners/{learner_key(who.email)}/credentials"
    # The operator listing is how a test learns a credential exists; the learner would
    # learn it from the e-mail.
    async with bb.http("registry", bb.operator_token) as registry:

        async def listing() -> list[dict[str, Any]]:
            return list((await registry.get(path)).json()["credentials"])

        before = {c["id"] for c in await listing()}
        async with bb.http("assessment", bb.api_keys[provider]) as client:
            r = await client.post("/v1/assessment-results", content=result(
                provider, definition, who=who, **outcome).model_dump_json(),
                headers={"content-type": "application/json"})
            assert r.status_code == 202, r.text
        creds = await eventually(listing, lambda cs: any(c["id"] not in before for c in cs))
    new = [c for c in creds if c["id"] not in before]
    assert new, f"no credential was registered for {who.email}"
    return dict(new[-1])


async def approved_employer(bb: Any, organisation: str) -> tuple[str, str]:
    """An employer that registered through notify as `organisation` (pending until an
    operator decides) and that the operator approved, on the running backbone `bb`: its id
    and its API key."""
    async with bb.http("notify") as client:
        r = await client.post("/v1/employers", json={
            "organisation": organisation, "contact_name": "Hiring Lead",
            "contact_email": "hiring@employer.example"})
        assert r.status_code == 201 and r.json()["status"] == "pending", r.text
        employer_id = r.json()["id"]
    async with bb.http("notify", bb.operator_token) as client:
        r = await client.post(f"/v1/admin/employers/{employer_id}/approve")
        assert r.status_code == 200, r.text
    return employer_id, r.json()["api_key"]


async def outbox_database(bb: Any, label: str) -> Any:
    """A database of its own on the stack's server holding just the shared tables (the
    inbox and a sharded outbox): an engine for tests that drive `OutboxRelay` directly."""
    server = bb.stack.database_url
    name = f"microcred_{label}_{uuid.uuid4().hex[:8]}"
    await ensure_database(server, name)
    engine = make_engine(database_url_for(server, name))
    await migrate(engine, [create_tables(SHARED_TABLES), add_outbox_shard])
    return engine


async def records_on(bb: Any, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` of the running backbone `bb`, from the beginning: read by a
    consumer of no group until a poll comes back empty (2 s for the first, 0.5 s after)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bb.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        batches = await consumer.getmany(timeout_ms=2000)
        while batches:
            for records in batches.values():
                found += records
            batches = await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()
    return found


__all__ = ["Envelope", "OtlpCollector", "ProviderPublisher", "SmtpRecorder",
           "approved_employer", "eventually", "issue_over_http", "learner", "provider_headers",
           "records_on", "result"]
