"""Dead letters for operators: list what a consumer refused and why, and replay it once the
cause is fixed (a definition published late, a provider reactivated). ADR 16.

`python -m microcred_shared.dlq list TOPIC` / `replay TOPIC --id DLQ_ID …` (see --help).

A replay publishes the original payload and headers back onto the original topic. It needs
a new CloudEvents id: the consumer recorded the original id in its inbox when it refused
the record, so the same id would be dropped as a duplicate. The new id is derived from the
dead letter's own id, so replaying one dead letter twice (an operator retrying, a timeout)
still applies it once; a replay that fails again becomes a new dead letter with a new id.
Each replay is written to the audit log as an operator change.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from microcred_shared.audit import audit_event, audit_record
from microcred_shared.contract import topics
from microcred_shared.settings import KafkaClientSettings

REPLAY_NAMESPACE = uuid.UUID("5b0d1c52-4a53-4a8e-9d4e-0c6f1f3a7d21")
REPLAY_OF = "microcred_replay_of"  # header: the original ce_id
REPLAYED_FROM = "microcred_replayed_from"  # header: the dead letter's dlq_id


@dataclass(frozen=True)
class DeadLetter:
    dlq_id: str
    reason: str
    service: str
    topic: str  # where it came from, and where a replay goes
    at: datetime
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...]

    def _header(self, name: str) -> str | None:
        # Leniently: a dead letter may be one because its headers are not UTF-8.
        for key, value in self.headers:
            if key == name:
                return (value or b"").decode(errors="replace")
        return None

    @property
    def ce_id(self) -> str | None:
        return self._header("ce_id")

    @property
    def ce_type(self) -> str | None:
        return self._header("ce_type")

    def summary(self) -> dict[str, Any]:
        return {"dlq_id": self.dlq_id, "topic": self.topic, "service": self.service,
                "at": self.at.isoformat(), "reason": self.reason, "ce_id": self.ce_id,
                "ce_type": self.ce_type, "key": (self.key or b"").decode(errors="replace"),
                "payload": self.value[:2000].decode(errors="replace")}


def _letter(rec: Any, topic: str) -> DeadLetter | None:
    # Only the dlq_ headers (ours) are read as text: the original ones may be anything.
    h = {k: (v or b"").decode(errors="replace") for k, v in rec.headers or ()
         if k.startswith("dlq_")}
    if "dlq_id" not in h:
        return None
    at = datetime.fromtimestamp(rec.timestamp / 1000, UTC)
    return DeadLetter(h["dlq_id"], h.get("dlq_reason", ""), h.get("dlq_service", ""),
                      h.get("dlq_topic", topic), at, rec.key, rec.value or b"",
                      tuple((k, None if v is None else bytes(v)) for k, v in rec.headers or ()))


async def read(bootstrap: str, topic: str, *, since: datetime | None = None,
               reason: str | None = None, **client_options: Any) -> list[DeadLetter]:
    """Every dead letter of `topic` (from its `.dlq`) up to now, once each (the outbox
    publishes at least once: repeats share a dlq_id), oldest first. No consumer group:
    reading commits nothing and disturbs no one."""
    name = topics.dlq(topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    parts = [TopicPartition(name, p["partition"]) for p in described["partitions"]]
    if not parts:
        return []
    # From the beginning by the reset policy: an explicit seek_to_beginning() races the
    # default "latest" reset in aiokafka and can leave the position at the end.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **client_options)
    await consumer.start()
    try:
        consumer.assign(parts)
        end = await consumer.end_offsets(parts)
        found: dict[str, DeadLetter] = {}
        while any([await consumer.position(tp) < end[tp] for tp in parts]):
            batch = await consumer.getmany(*parts, timeout_ms=1000)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset < end[tp] and (letter := _letter(rec, topic)):
                        found.setdefault(letter.dlq_id, letter)
    finally:
        await consumer.stop()
    out = sorted(found.values(), key=lambda d: d.at)
    if since is not None:
        out = [d for d in out if d.at >= since]
    if reason:
        out = [d for d in out if reason.lower() in d.reason.lower()]
    return out


def replay_id(letter: DeadLetter) -> str:
    return str(uuid.uuid5(REPLAY_NAMESPACE, letter.dlq_id))


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes | None]]:
    kept = [(k, v) for k, v in letter.headers
            if not k.startswith("dlq_") and k not in ("ce_id", REPLAY_OF, REPLAYED_FROM)]
    return [("ce_id", replay_id(letter).encode()), *kept,
            (REPLAY_OF, (letter.ce_id or "").encode()), (REPLAYED_FROM, letter.dlq_id.encode())]


async def replay(bootstrap: str, letters: list[DeadLetter], *, operator: str,
                 **client_options: Any) -> list[str]:
    """Publish each dead letter back onto its topic; returns the new event ids."""
    if not letters:
        return []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, **client_options)
    await producer.start()
    try:
        sends = [await producer.send(d.topic, d.value, key=d.key, headers=replay_headers(d))
                 for d in letters]
        for sent in sends:
            await sent
        for topic in sorted({d.topic for d in letters}):
            mine = [d for d in letters if d.topic == topic]
            event = audit_event(
                "operator-cli", channel="admin", actor=f"operator:{operator}",
                provider_id=None, action="dlq.replay", outcome="changed",
                reason=f"replayed {len(mine)} dead letter(s) onto {topic}",
                details={"topic": topic, "dlq_ids": " ".join(d.dlq_id for d in mine)[:1500]})
            rec = audit_record(event)
            await producer.send_and_wait(rec.topic, rec.payload, key=rec.key,
                                         headers=rec.headers)
    finally:
        await producer.stop()
    return [replay_id(d) for d in letters]


def _cli(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m microcred_shared.dlq",
                                 description="List and replay dead letters of a topic.")
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                          "127.0.0.1:9092"))
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("list", "replay"):
        p = sub.add_parser(name)
        p.add_argument("topic", help="the original topic, e.g. " + topics.RESULTS)
        p.add_argument("--since", type=datetime.fromisoformat,
                       help="only dead letters from this time on (ISO 8601 with offset)")
        p.add_argument("--reason", help="only dead letters whose reason contains this")
        p.add_argument("--id", action="append", default=[], dest="ids",
                       help="only this dlq_id (repeatable)")
        if name == "replay":
            p.add_argument("--all", action="store_true",
                           help="replay every dead letter that matches (else --id is needed)")
    args = ap.parse_args(argv)
    # The operator's own Kafka login, from the same MICROCRED_KAFKA_* settings (ADR 19).
    login = KafkaClientSettings().kafka_client_options()
    letters = asyncio.run(read(args.bootstrap, args.topic, since=args.since,
                               reason=args.reason, **login))
    if args.ids:
        letters = [d for d in letters if d.dlq_id in set(args.ids)]
    if args.command == "list":
        for d in letters:
            print(json.dumps(d.summary(), ensure_ascii=False))
        return 0
    if not (args.ids or args.all):
        print("replay: name dead letters with --id, or pass --all", file=sys.stderr)
        return 2
    ids = asyncio.run(replay(args.bootstrap, letters, operator=getpass.getuser(), **login))
    for d, new in zip(letters, ids, strict=True):
        print(json.dumps({"dlq_id": d.dlq_id, "topic": d.topic, "replayed_as": new}))
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
