"""OpenTelemetry set-up: one tracer provider per service, OTLP export when configured."""

from __future__ import annotations

import logging
import re
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
log = logging.getLogger(__name__)


def setup_tracing(service_name: str, otlp_endpoint: str | None) -> trace.TracerProvider:
    """A recording SDK provider when traces go somewhere; otherwise OpenTelemetry's no-op
    provider, which still carries an incoming `traceparent` through unchanged (the e2e
    benchmark measured 6-9 % of each service's CPU in spans nobody would see)."""
    if not otlp_endpoint:
        return trace.get_tracer_provider()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SqlSpanNames())
    endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        AsyncPGInstrumentor().instrument(tracer_provider=provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    except Exception:  # an instrumentation failing must not stop the service
        log.exception("instrumentation failed")
    return provider


_SQL = re.compile(
    r"^\s*(?:(?P<verb>INSERT)\s+INTO|(?P<verb2>UPDATE)|(?P<verb3>DELETE)\s+FROM)\s+"
    r"(?P<table>[\w.\"]+)|^\s*(?P<select>SELECT)\b.*?\bFROM\s+(?P<from>[\w.\"]+)",
    re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"^\s*(\w+)")
_WRITES = re.compile(r"\b(?:(INSERT)\s+INTO|(?<!DO )(UPDATE)|(DELETE)\s+FROM)\s+([\w.\"]+)",
                     re.IGNORECASE)


def sql_span_name(statement: str) -> str:
    """`INSERT outbox`, `SELECT notifications`, `BEGIN`, `ping` — what an operator reads in a
    trace — instead of the driver's first token (`BEGIN;`, `;`). A statement that begins
    with `WITH` is named by what it writes (`INSERT ingested_results, INSERT outbox`)."""
    if statement.lstrip()[:4].upper() == "WITH":
        writes = [f"{(a or b or c).upper()} {table.strip(chr(34))}"
                  for a, b, c, table in _WRITES.findall(statement)]
        if writes:
            return ", ".join(dict.fromkeys(writes))
    m = _SQL.match(statement)
    if m:
        verb = (m.group("verb") or m.group("verb2") or m.group("verb3") or "SELECT").upper()
        table = (m.group("table") or m.group("from") or "").strip('"')
        return f"{verb} {table}"
    word = _WORD.match(statement)
    return word.group(1).upper() if word else "ping"


class SqlSpanNames(SpanProcessor):
    """Names the asyncpg instrumentation's spans by their statement (issue 13)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        scope = span.instrumentation_scope
        if scope is None or "asyncpg" not in scope.name:
            return
        attrs = span.attributes or {}
        statement = attrs.get("db.statement") or attrs.get("db.query.text")
        if isinstance(statement, str):
            span.update_name(sql_span_name(statement))

    def on_end(self, span: ReadableSpan) -> None:
        pass


def parent_context(traceparent: str | None, tracestate: str | None = None) -> Context:
    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    return _propagator.extract(carrier)


def traceparent_of(ctx: Context | None = None) -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=ctx or otel_context.get_current())
    return carrier.get("traceparent")


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None


class PassTraceparent:
    """What OpenTelemetry's ASGI middleware does for a request when no span is recorded (no
    OTLP endpoint): an incoming `traceparent` becomes the current context, so what the
    request writes carries it on. Plain ASGI, about 2 µs a request where the instrumented
    middleware's non-recording spans cost 100-200 µs (issue 12: HTTP ingest)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    token = otel_context.attach(parent_context(value.decode("latin-1")))
                    try:
                        await self.app(scope, receive, send)
                    finally:
                        otel_context.detach(token)
                    return
        await self.app(scope, receive, send)
