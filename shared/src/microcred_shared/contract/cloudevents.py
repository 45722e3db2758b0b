"""CloudEvents 1.0 in Kafka binary mode: the envelope lives in headers, the payload is JSON.

Header names follow the CloudEvents Kafka protocol binding (`ce_` prefix). The W3C
`traceparent` header rides along so that one assessment is one trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from microcred_shared.contract.events import EVENT_TYPES, Event
from microcred_shared.contract.ids import random_id

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]
# The two headers every record carries with the same value, encoded once (tuples: shared
# by every record's list, never changed).
_SPECVERSION_HEADER = ("ce_specversion", SPECVERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
# As records arrive: Kafka allows a header without a value.
RawHeaders = list[tuple[str, bytes | None]]


class EnvelopeError(ValueError):
    """A record that is not a well-formed microcred CloudEvent. Carries a reason for the DLQ."""


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    source: str
    time: datetime
    subject: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self) -> Headers:
        out: Headers = [
            _SPECVERSION_HEADER,
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.isoformat().encode()),
            _CONTENT_TYPE_HEADER,
        ]
        if self.subject:
            out.append(("ce_subject", self.subject.encode()))
        if self.traceparent:
            out.append(("traceparent", self.traceparent.encode()))
        if self.tracestate:
            out.append(("tracestate", self.tracestate.encode()))
        if self.extra:
            out.extend((k, v.encode()) for k, v in self.extra.items())
        return out


def new_envelope(event: Event, source: str, *, event_id: str | None = None,
                 subject: str | None = None, traceparent: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or random_id(),
        type=event.ce_type,
        source=source,
        time=datetime.now(UTC),
        subject=subject,
        traceparent=traceparent,
    )


def encode(event: Event) -> bytes:
    """The event's JSON, the bytes `event.model_dump_json().encode()` gives: pydantic-core
    writes bytes, which `model_dump_json` decodes to text only for us to encode them back
    (two passes over every payload; issuance's carry a ~4 KB signed credential, issue 12)."""
    return event.__pydantic_serializer__.to_json(event)


def _ours(name: str) -> bool:
    return name.startswith("ce_") or name in ("content-type", "traceparent", "tracestate")


def header_map(headers: Any) -> dict[str, str]:
    """The CloudEvents and trace headers as text; other headers are not ours to read and
    are left out. A value of ours that is not UTF-8 raises EnvelopeError; a header without
    a value reads as empty (so a required one counts as missing)."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        if not _ours(key):
            continue
        if value is None:
            out[key] = ""
            continue
        try:
            out[key] = value.decode() if isinstance(value, bytes | bytearray) else str(value)
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {key!r} is not UTF-8") from exc
    return out


# The attributes a record may carry once: two differing values make its identity ambiguous.
_SINGLE = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject",
           "content-type", "traceparent", "tracestate")
_SINGLE_NAMES = frozenset(_SINGLE)
_PLAIN = frozenset(("content-type", "traceparent", "tracestate"))  # ours without ce_


def parse_envelope(headers: Any) -> Envelope:
    # One pass over the headers: `header_map` and a count per name (each record of every
    # service comes through here, issue 12); the same checks in the same order.
    h: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in headers or ():
        if not (key.startswith("ce_") or key in _PLAIN):
            continue
        if key in h and key in _SINGLE_NAMES:
            repeated.add(key)
        if value is None:
            h[key] = ""
        elif type(value) is bytes or isinstance(value, bytes | bytearray):
            try:
                h[key] = value.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {key!r} is not UTF-8") from exc
        else:
            h[key] = str(value)
    if repeated:
        raise EnvelopeError("header(s) given more than once: " + ", ".join(sorted(repeated)))
    # A NUL cannot be stored (PostgreSQL text) nor signed: the inbox would refuse the ce_id
    # and the whole batch with it, forever. (One search of the values joined: a NUL in
    # the whole is a NUL in one of them.)
    if "\x00" in "".join(h.values()):
        unstorable = sorted(k for k, v in h.items() if "\x00" in v)
        raise EnvelopeError("header(s) contain a NUL character: " + ", ".join(unstorable))
    missing = [n for n in ("ce_id", "ce_type", "ce_source", "ce_specversion") if not h.get(n)]
    if missing:
        raise EnvelopeError("missing CloudEvents header(s): " + ", ".join(missing))
    if h["ce_specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported ce_specversion {h['ce_specversion']!r}")
    ctype = h.get("content-type", CONTENT_TYPE)
    if ctype != CONTENT_TYPE:
        ctype = ctype.split(";")[0].strip()
        if ctype != CONTENT_TYPE:
            raise EnvelopeError(f"unsupported content-type {ctype!r}")
    try:
        time = datetime.fromisoformat(h["ce_time"]) if h.get("ce_time") else datetime.now(UTC)
    except ValueError as exc:
        raise EnvelopeError(f"ce_time is not RFC 3339: {h['ce_time']!r}") from exc
    return Envelope(
        id=h["ce_id"], type=h["ce_type"], source=h["ce_source"], time=time,
        subject=h.get("ce_subject"), traceparent=h.get("traceparent"),
        tracestate=h.get("tracestate"),
    )


def decode(envelope: Envelope, value: bytes | None, expected: type[Event] | None = None) -> Event:
    """Parse the payload for the envelope's `ce_type`; raise EnvelopeError with a reason."""
    cls = EVENT_TYPES.get(envelope.type)
    if cls is None:
        raise EnvelopeError(f"unknown ce_type {envelope.type!r}")
    if expected is not None and cls is not expected:
        raise EnvelopeError(f"ce_type {envelope.type!r} does not belong on this topic")
    if not value:
        raise EnvelopeError("empty payload")
    try:
        return cls.model_validate_json(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise EnvelopeError(f"invalid {cls.__name__} payload: {problems}") from exc
