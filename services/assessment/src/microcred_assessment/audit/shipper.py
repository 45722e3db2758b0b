"""Ships the broker's audit log (deploy/kafka-audit writes one JSON object per line) to
topics.KAFKA_REFUSALS, where the assessment service turns each line into an audit entry.

It runs where the log is: beside the broker, as `python -m microcred_assessment
ship-broker-audit LOG` (a sidecar in production), or inside the assessment service when
MICROCRED_BROKER_AUDIT_LOG names a local file (the devstack). At least once: the position
is saved only after Kafka acknowledged the lines before it, and every line carries the
plugin's id, which becomes the event id, so a line read twice is stored once. Log rollover
(the file renamed to LOG.1 …) is followed by inode, so the end of the old file is not lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from microcred_shared.contract import topics
from microcred_shared.contract.events_providers import BrokerRefusalObserved
from microcred_shared.outbox import event_record

log = logging.getLogger(__name__)
SOURCE = "/microcred/kafka-broker"
MAX_BATCH = 500


@dataclass(frozen=True)
class Position:
    inode: int
    offset: int


def parse(line: bytes) -> BrokerRefusalObserved | None:
    """One audit line → the event, or None (logged) for a line that is not one."""
    try:
        raw = json.loads(line)
        return BrokerRefusalObserved(refusal_id=raw.pop("id"), observed_at=raw.pop("at"),
                                     **{k: v for k, v in raw.items() if v is not None})
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        log.warning("skipping a broker audit line that does not parse: %s", exc)
        return None


class LogReader:
    """Complete lines appended since the saved position, across rollovers."""

    def __init__(self, path: Path, state: Path) -> None:
        self.path, self.state = path, state

    def load(self) -> Position | None:
        try:
            data = json.loads(self.state.read_text())
            return Position(int(data["inode"]), int(data["offset"]))
        except (OSError, ValueError, KeyError):
            return None

    def save(self, pos: Position) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"inode": pos.inode, "offset": pos.offset}))
        os.replace(tmp, self.state)

    def _file_with_inode(self, inode: int) -> Path | None:
        for candidate in [self.path, *sorted(self.path.parent.glob(self.path.name + ".*"))]:
            try:
                if candidate.stat().st_ino == inode:
                    return candidate
            except OSError:
                continue
        return None

    def read(self, pos: Position | None) -> tuple[list[bytes], Position | None]:
        """Lines after `pos` (at most MAX_BATCH) and the position after them."""
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            return [], pos
        if pos is None:
            pos = Position(current, 0)
        source = self._file_with_inode(pos.inode)
        if source is None:  # rolled over and deleted before we read it
            log.warning("broker audit log %s was rotated away unread; lines may be lost",
                        self.path)
            pos, source = Position(current, 0), self.path
        with open(source, "rb") as f:
            if pos.offset > os.fstat(f.fileno()).st_size:  # truncated in place: start over
                pos = Position(pos.inode, 0)
            f.seek(pos.offset)
            chunk = f.read(1 << 20)
        end = chunk.rfind(b"\n")
        if end < 0:
            if pos.inode != current and source != self.path:
                return [], Position(current, 0)  # the old file is finished: move on
            return [], pos
        lines = chunk[: end + 1].splitlines()[:MAX_BATCH]
        used = sum(len(line) + 1 for line in lines)
        return [ln for ln in lines if ln.strip()], Position(pos.inode, pos.offset + used)


async def ship(path: Path, bootstrap: str, *, poll: float = 0.5,
               stop: asyncio.Event | None = None, **client_options: Any) -> None:
    """client_options: the shipper's Kafka login (Settings.kafka_client_options())."""
    reader = LogReader(path, path.with_name(path.name + ".shipped"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, **client_options)
    await producer.start()
    try:
        pos = reader.load()
        while stop is None or not stop.is_set():
            lines, after = await asyncio.to_thread(reader.read, pos)
            events = [e for e in map(parse, lines) if e is not None]
            sends = []
            for event in events:
                rec = event_record(topics.KAFKA_REFUSALS, event, SOURCE, traceparent=None,
                                   event_id=str(event.refusal_id))
                sends.append(await producer.send(rec.topic, rec.payload, key=rec.key,
                                                 headers=rec.headers))
            await asyncio.gather(*sends)  # acknowledged before the position moves
            if after is not None and after != pos:
                await asyncio.to_thread(reader.save, after)
                pos = after
            if not lines:
                await asyncio.sleep(poll)
    finally:
        await producer.stop()


async def ship_forever(path: Path, bootstrap: str,
                       client_options: dict[str, Any] | None = None) -> None:
    """`ship`, restarted after a failure (the broker down, a full disk): it must not stop."""
    while True:
        try:
            await ship(path, bootstrap, **(client_options or {}))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("broker audit shipper failed; restarting in 5 s")
            await asyncio.sleep(5)
