"""FastStream's batch parser sees only decodable header values (issue 13); records whose
headers are all UTF-8 already reach it as they are, without a copy (issue 12)."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from microcred_shared.consumer import lenient_batch_parser


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


async def test_records_with_utf8_headers_are_handed_on_as_they_are() -> None:
    records = (rec([("ce_id", b"a"), ("ce_type", "é".encode())]), rec([]))
    parsed, message = await parse(records)
    assert all(p is r for p, r in zip(parsed, records, strict=True))
    assert message.raw_message is records


async def test_a_record_with_a_bad_header_is_copied_readable_and_kept_intact() -> None:
    good = rec([("ce_id", b"a")])
    bad = rec([("ce_id", b"b"), ("x", b"\xff\xfe"), ("none", None)])
    parsed, message = await parse((good, bad))
    assert parsed[0] is good
    assert parsed[1] is not bad
    assert parsed[1].headers == [("ce_id", b"b"), ("x", "\ufffd\ufffd".encode()), ("none", b"")]
    assert message.raw_message == (good, bad)
    assert message.raw_message[1].headers[1] == ("x", b"\xff\xfe")  # the bytes as they came
