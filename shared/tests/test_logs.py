"""A JSON log line names its service and, inside a span, leads to the trace."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from microcred_shared.logs import JsonFormatter


def record(msg: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys
            info = sys.exc_info()
    return logging.LogRecord("microcred.x", logging.WARNING, __file__, 1, msg, (), info)


def test_a_json_line_carries_the_service_and_the_trace_of_the_current_span():
    fmt = JsonFormatter("issuance")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        line = json.loads(fmt.format(record("signed %s")))
        ctx = span.get_span_context()
    assert line["service"] == "issuance" and line["level"] == "warning"
    assert line["message"] == "signed %s" and line["logger"] == "microcred.x"
    assert line["trace_id"] == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")


def test_outside_a_span_there_is_no_trace_id_and_errors_keep_their_traceback():
    line = json.loads(JsonFormatter("notify").format(record("failed", exc=True)))
    assert "trace_id" not in line and "ValueError: boom" in line["exception"]
