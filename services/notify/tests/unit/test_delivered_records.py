"""The `notification.delivered` records a group of sent mails writes to the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from microcred_notify.learner_mail import delivery
from microcred_shared import outbox
from microcred_shared.contract.cloudevents import decode, parse_envelope
from microcred_shared.contract.events import NotificationDelivered


def _row(recipient: str, attempts: int) -> SimpleNamespace:
    return SimpleNamespace(id=uuid.uuid4(), credential_id=uuid.uuid4(), recipient=recipient,
                           attempts=attempts)


def test_a_groups_records_are_those_of_one_event_each_but_for_their_ids():
    """Issue 12, wave 16: a group's records are made from a template, not an envelope and
    a header list per mail; what the relay publishes is unchanged but for each record's
    own ce_id (a new uuid, as before)."""
    now = datetime(2026, 12, 7, 15, 28, 3, 835813, tzinfo=UTC)
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    outcomes = [delivery._Outcome(_row(r, a), None, tp) for r, a, tp in (
        ("ada@learners.example", 0, None), ("chloé.\"g\"@learners.example", 2, trace))]
    made = delivery._delivered_columns(outcomes, now)
    as_before = outbox.columns([delivery.Deliverer._delivered(
        delivery.Deliverer.__new__(delivery.Deliverer), o.row, o.traceparent, now)
        for o in outcomes])
    assert made[0] == as_before[0] == [outbox_topic() for _ in outcomes]
    assert made[1] == as_before[1] and made[3] == as_before[3]
    for packed, before, o in zip(made[2], as_before[2], outcomes, strict=True):
        ours, theirs = json.loads(packed), json.loads(before)
        assert [k for k, _ in ours] == [k for k, _ in theirs]
        assert uuid.UUID(dict(ours)["ce_id"]) != uuid.UUID(dict(theirs)["ce_id"])
        assert [p for p in ours if p[0] != "ce_id"] == [p for p in theirs if p[0] != "ce_id"]
        envelope = parse_envelope(outbox.unpack_headers(packed))
        event = decode(envelope, made[3][outcomes.index(o)], NotificationDelivered)
        assert event == NotificationDelivered(
            notification_id=o.row.id, credential_id=o.row.credential_id,
            recipient=o.row.recipient, attempts=o.row.attempts + 1, delivered_at=now)
        assert envelope.time == now and envelope.traceparent == o.traceparent


def outbox_topic() -> str:
    from microcred_shared.contract import topics

    return topics.NOTIFICATIONS
