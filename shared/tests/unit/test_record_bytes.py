"""What the shared code writes per record is what it wrote before issue 12's wave 18 made it
cheaper: an event's payload bytes, its CloudEvents headers and the inbox digest (stored by
every version, compared by the next) — each checked here against the expression it
replaced, on many inputs."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from microcred_shared.consumer import event_digest
from microcred_shared.contract.cloudevents import (
    CONTENT_TYPE,
    SPECVERSION,
    Envelope,
    encode,
    new_envelope,
    parse_envelope,
)
from microcred_shared.contract.events import CredentialIssued, Event
from microcred_shared.outbox import pack_headers, unpack_headers
from microcred_testkit.backbone import result


def digest_before(envelope: Envelope, event: Event) -> bytes:
    """`consumer.event_digest` as every version before wave 18 computed it."""
    said = f"{envelope.type}\n{envelope.source}\n".encode() + event.model_dump_json().encode()
    return hashlib.sha256(said).digest()


def headers_before(env: Envelope) -> list[tuple[str, bytes]]:
    """`Envelope.headers` before wave 18."""
    out = [("ce_specversion", SPECVERSION.encode()), ("ce_id", env.id.encode()),
           ("ce_type", env.type.encode()), ("ce_source", env.source.encode()),
           ("ce_time", env.time.isoformat().encode()), ("content-type", CONTENT_TYPE.encode())]
    if env.subject:
        out.append(("ce_subject", env.subject.encode()))
    if env.traceparent:
        out.append(("traceparent", env.traceparent.encode()))
    if env.tracestate:
        out.append(("tracestate", env.tracestate.encode()))
    out.extend((k, v.encode()) for k, v in env.extra.items())
    return out


# JSON as a signed credential may hold it: any text (escapes, non-ASCII, control
# characters), integers past 64 bits, floats, nesting.
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=5),
    max_leaves=40)
_text = st.text(max_size=60)


def issued(credential: dict[str, Any], *, title: str = "Workplace safety",
           email: str | None = "ana@example.ca", zone: timezone = UTC) -> CredentialIssued:
    return CredentialIssued(
        credential_id=uuid.uuid4(), assessment_id=None, provider_id="lakeshore-college",
        definition_id="lakeshore-workplace-safety", definition_version=3,
        learner_key=str(uuid.uuid4()), learner_email=email, learner_name="Ana Tremblay",
        title=title, issued_at=datetime(2026, 12, 7, 21, 0, 1, 123456, tzinfo=zone),
        credential=credential)


@settings(max_examples=400)
@given(st.dictionaries(st.text(max_size=12), _json, max_size=8), _text,
       st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(minutes=330))]))
def test_an_events_bytes_and_its_inbox_digest_are_what_they_were(
        credential: dict[str, Any], title: str, zone: timezone) -> None:
    event = issued(credential, title=title or "t", zone=zone)
    assert encode(event) == event.model_dump_json().encode()
    for source in ("/services/issuance", "/providers/é 中", ""):
        env = new_envelope(event, source)
        assert event_digest(env, event) == digest_before(env, event)
    # and as a consumer computes it, from the record it decoded
    decoded = CredentialIssued.model_validate_json(encode(event))
    env = new_envelope(decoded, "/services/issuance")
    assert event_digest(env, decoded) == digest_before(env, event)


def test_the_digest_of_every_kind_of_event_the_tests_build_is_what_it_was() -> None:
    events: list[Event] = [result("lakeshore-college", "lakeshore-workplace-safety", passed=p)
                           for p in (True, False)]
    events += [issued({"id": f"urn:uuid:{uuid.uuid4()}", "n": n, "x": n / 7, "é": "\u2028"})
               for n in range(200)]
    for event in events:
        env = new_envelope(event, "/tests", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        assert encode(event) == event.model_dump_json().encode()
        assert event_digest(env, event) == digest_before(env, event)


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=40), _text, st.one_of(st.none(), _text),
       st.one_of(st.none(), _text), st.one_of(st.none(), _text))
def test_an_envelopes_headers_are_what_they_were(ce_id: str, source: str, subject: str | None,
                                                 traceparent: str | None,
                                                 tracestate: str | None) -> None:
    for time in (datetime.now(UTC), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                 datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))):
        env = Envelope(id=ce_id, type="ca.microcred.credential.issued.v1", source=source,
                       time=time, subject=subject, traceparent=traceparent,
                       tracestate=tracestate)
        assert env.headers() == headers_before(env)
    extra = Envelope(id=ce_id, type="t", source=source, time=datetime.now(UTC),
                     extra={"x_one": "1", "x_two": "é"})
    assert extra.headers() == headers_before(extra)


def test_every_record_gets_its_own_header_list() -> None:
    env = new_envelope(result("lakeshore-college", "lakeshore-workplace-safety"), "/tests")
    first = env.headers()
    first.append(("mine", b"x"))
    assert ("mine", b"x") not in env.headers()


def test_a_new_envelopes_id_is_a_fresh_version_4_uuid() -> None:
    event = result("lakeshore-college", "lakeshore-workplace-safety")
    made = {new_envelope(event, "/tests").id for _ in range(1000)}
    assert len(made) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in made)
    assert new_envelope(event, "/tests", event_id="given").id == "given"


def test_an_envelope_read_back_from_its_headers_is_the_same() -> None:
    event = result("lakeshore-college", "lakeshore-workplace-safety")
    env = new_envelope(event, "/providers/lakeshore-college", subject="s",
                       traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert parse_envelope(env.headers()) == env
    assert parse_envelope(unpack_headers(pack_headers(env.headers()))) == env
