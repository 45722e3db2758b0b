"""The broker's audit log, read and explained: lines are read once each across rollovers
and restarts, a bad line is skipped, and each refusal says which provider and why."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from microcred_assessment.access.models import KafkaPrincipal
from microcred_assessment.audit.domain import refusal_entry as _entry
from microcred_assessment.audit.shipper import LogReader, parse
from microcred_shared.contract.events_providers import BrokerRefusalObserved

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def line(kind: str = "authentication-failed", **fields: str) -> bytes:
    body = {"id": str(uuid.uuid4()), "at": "2026-12-01T09:30:00.123456789Z", "kind": kind,
            **fields}
    return json.dumps(body).encode() + b"\n"


def drain(reader: LogReader) -> list[bytes]:
    """Everything the reader offers now, saving the position as the shipper does."""
    out: list[bytes] = []
    while True:
        before = reader.load()
        lines, pos = reader.read(before)
        if pos is None or (pos == before and not lines):
            return out
        out += lines
        reader.save(pos)


def test_lines_are_read_once_each_even_across_a_restart_and_a_rollover(tmp_path: Path):
    log = tmp_path / "kafka-audit.jsonl"
    state = tmp_path / "kafka-audit.jsonl.shipped"
    log.write_bytes(line(username="a") + line(username="b"))
    assert [parse(x).username for x in drain(LogReader(log, state))] == ["a", "b"]

    with open(log, "ab") as f:  # a line half-written when we look is left for later
        f.write(line(username="c") + line(username="d")[:20])
    assert [parse(x).username for x in drain(LogReader(log, state))] == ["c"]

    with open(log, "ab") as f:
        f.write(line(username="d")[20:])  # (the same record's rest, as the broker finishes)
    log.rename(tmp_path / "kafka-audit.jsonl.1")  # log4j rolls the file over
    log.write_bytes(line(username="e"))
    restarted = LogReader(log, state)  # a new process: only the saved position survives
    got = [parse(x) for x in drain(restarted)]
    assert [e.username if e else None for e in got][-1] == "e"
    assert len(got) == 2  # d (rest of the old file), then e; nothing twice


def test_a_line_that_is_not_an_audit_record_is_skipped_not_fatal():
    assert parse(b"not json") is None
    assert parse(json.dumps({"id": "x", "at": "now", "kind": "other"}).encode()) is None
    event = parse(line("acl-denied", principal="User:provider-p", operation="WRITE"))
    assert event is not None and event.user == "provider-p"


def refusal(kind: str = "authentication-failed", **f: str) -> BrokerRefusalObserved:
    return BrokerRefusalObserved(refusal_id=uuid.uuid4(), observed_at=T0, kind=kind,
                                 mechanism="SCRAM-SHA-512", **f)


def principal(**f: datetime | None) -> KafkaPrincipal:
    return KafkaPrincipal(provider_id="lakeshore", username="provider-lakeshore",
                          topic="t", created_at=T0 - timedelta(days=1), **f)


def test_a_failed_login_names_the_provider_and_what_became_of_its_principal():
    hour = timedelta(hours=1)
    cases = [
        (None, "unknown", "no such principal"),
        (principal(), "active", "wrong password"),
        (principal(rotated_at=T0 - hour), "rotated", "rotated at 2026-12-01 08:00:00"),
        (principal(rotated_at=T0 + hour), "active", "wrong password"),  # rotated later
        (principal(revoked_at=T0 - hour), "revoked", "revoked at 2026-12-01 08:00:00"),
    ]
    for row, state, words in cases:
        entry = _entry(refusal(username="provider-lakeshore"), row)
        assert entry.details["principal_state"] == state and words in entry.reason
        assert entry.provider_id == (row.provider_id if row else None)
        assert entry.action == "kafka.authentication" and entry.channel == "kafka"


def test_an_acl_denial_is_attributed_to_the_provider_whose_principal_it_was():
    e = refusal("acl-denied", principal="User:provider-lakeshore", operation="WRITE",
                resource_type="TOPIC", resource_name="microcred.assessment.results.v1",
                request="Produce")
    entry = _entry(e, principal())
    assert (entry.actor, entry.provider_id) == ("provider:lakeshore", "lakeshore")
    assert "may not WRITE topic microcred.assessment.results.v1" in entry.reason
    assert entry.audit_id == e.refusal_id  # shipped twice, stored once
    assert _entry(e, None).actor == "kafka:User:provider-lakeshore"


def test_a_service_principals_refusals_name_the_service():
    e = refusal("acl-denied", principal="User:svc-issuance", operation="WRITE",
                resource_type="TOPIC", resource_name="microcred.assessment.decisions.v1",
                request="Produce")
    entry = _entry(e, None)
    assert (entry.actor, entry.provider_id) == ("service:issuance", None)
    login = _entry(refusal(username="svc-registry"), None)
    assert login.details["principal_state"] == "service"
    assert "service principal" in login.reason
    assert _entry(refusal(username="svc-nobody"), None).details["principal_state"] == "unknown"


def test_a_provider_on_the_services_listener_is_told_why_by_the_listener_rule():
    why = "only service principals may use listener SERVICES"  # the plugin's rule (ADR 21)
    e = refusal("acl-denied", principal="User:provider-lakeshore", operation="WRITE",
                resource_type="TOPIC", resource_name="microcred.assessment.results.v1",
                request="Produce", listener="SERVICES", reason=why)
    entry = _entry(e, principal())
    assert entry.actor == "provider:lakeshore" and entry.reason.endswith(why)
    assert entry.details["listener"] == "SERVICES"
    assert "broker's ACLs" in _entry(refusal("acl-denied", principal="User:provider-x",
                                            operation="READ"), None).reason
