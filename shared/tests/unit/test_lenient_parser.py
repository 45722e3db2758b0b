"""FastStream's batch parser sees only decodable header values (issue 13); records whose
headers are all UTF-8 already reach it as they are, without a copy (issue 12); where no
span is recorded, it sees the first record only (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from microcred_shared import outbox
from microcred_shared.consumer import lenient_batch_parser


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans are recorded: FastStream's telemetry middleware reads every record."""
    monkeypatch.setattr(outbox, "recording", lambda: True)


def rec(headers: list[tuple[str, Any]]) -> ConsumerRecord:
    return ConsumerRecord("t", 0, 0, 0, 0, b"k", b"{}", None, 0, 0, headers)


class Message:
    raw_message: Any = None


async def parse(records: tuple[ConsumerRecord, ...]) -> tuple[tuple[ConsumerRecord, ...], Any]:
    seen: list[tuple[ConsumerRecord, ...]] = []

    async def original(batch: tuple[ConsumerRecord, ...]) -> Message:
        for r in batch:  # what FastStream does: decode every header value
            for _, v in r.headers:
                v.decode()
        seen.append(batch)
        return Message()

    message = await lenient_batch_parser(records, original)
    return seen[0], message


async def test_records_with_utf8_headers_are_handed_on_as_they_are(spans: None) -> None:
    records = (rec([("ce_id", b"a"), ("ce_type", "é".encode())]), rec([]))
    parsed, message = await parse(records)
    assert all(p is r for p, r in zip(parsed, records, strict=True))
    assert message.raw_message is records


async def test_a_record_with_a_bad_header_is_copied_readable_and_kept_intact(
        spans: None) -> None:
    good = rec([("ce_id", b"a")])
    bad = rec([("ce_id", b"b"), ("x", b"\xff\xfe"), ("none", None)])
    parsed, message = await parse((good, bad))
    assert parsed[0] is good
    assert parsed[1] is not bad
    assert parsed[1].headers == [("ce_id", b"b"), ("x", "\ufffd\ufffd".encode()), ("none", b"")]
    assert message.raw_message == (good, bad)
    assert message.raw_message[1].headers[1] == ("x", b"\xff\xfe")  # the bytes as they came


async def test_without_spans_faststream_parses_the_first_record_and_the_handler_gets_all(
        ) -> None:
    assert not outbox.recording()
    bad = rec([("ce_id", b"b"), ("x", b"\xff")])
    records = (rec([("ce_id", b"a")]), bad, rec([("ce_id", b"c")]))
    parsed, message = await parse(records)
    assert parsed == records[:1]
    assert message.raw_message is records  # every record, the bad one's bytes intact
    parsed, message = await parse((bad, *records[:1]))
    assert parsed[0].headers[1] == ("x", "\ufffd".encode()) and len(parsed) == 1
    assert message.raw_message[0].headers[1] == ("x", b"\xff")
