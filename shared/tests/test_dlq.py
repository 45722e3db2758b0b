"""What a dead-letter replay puts back on the topic: the original event under an id of its
own (the inbox remembers the refused one), the same for every replay of that dead letter,
and no dead-letter bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime

from microcred_shared.dlq import REPLAY_OF, REPLAYED_FROM, DeadLetter, replay_headers


def letter(dlq_id: str = "microcred.assessment.results.v1:2:17") -> DeadLetter:
    headers = ((b"ce_id", "orig-1"), (b"ce_source", "/providers/lakeshore-college"),
               (b"traceparent", "00-aa-bb-01"), (b"dlq_id", dlq_id),
               (b"dlq_reason", "unknown credential definition 'x'"))
    return DeadLetter(dlq_id, "unknown credential definition 'x'", "assessment",
                      "microcred.assessment.results.v1", datetime.now(UTC), b"k", b"{}",
                      tuple((k.decode(), v.encode()) for k, v in headers))


def header_map(headers):
    return {k: (v or b"").decode() for k, v in headers}


def test_a_replay_keeps_the_event_and_its_sender_under_a_new_stable_id():
    h = header_map(replay_headers(letter()))
    assert h["ce_source"] == "/providers/lakeshore-college" and h["traceparent"]
    assert h["ce_id"] != "orig-1" and h[REPLAY_OF] == "orig-1"
    assert h[REPLAYED_FROM] == "microcred.assessment.results.v1:2:17"
    assert not any(k.startswith("dlq_") for k in h)
    assert header_map(replay_headers(letter()))["ce_id"] == h["ce_id"]  # replayed twice
    assert header_map(replay_headers(letter("other:0:1")))["ce_id"] != h["ce_id"]
    assert [k for k, _ in replay_headers(letter())].count("ce_id") == 1
