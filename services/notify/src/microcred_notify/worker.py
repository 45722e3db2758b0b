"""The loop shared by notify's delivery workers (learner mail, employer webhooks)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from microcred_shared import logs

log = logging.getLogger(__name__)


@dataclass
class DeliveryCounts:
    """What a delivery worker has done since the process started, exported at /metrics.
    Counted once the transaction recording it commits. Each attempt counts once: delivered,
    failed and to be retried, or dead-lettered (a delivery's last, failed attempt)."""

    delivered: int = 0
    attempts_failed: int = 0
    dead_lettered: int = 0


class Owed:
    """Wakes a delivery worker after a consumer commit only if that work was owed: a handler
    marks it (`owe`) inside the transaction, the runtime's commit listener (`committed`)
    wakes the worker. Every commit of every topic used to wake both workers, i.e. a
    claim query per batch whatever it carried. A mark taken by another topic's commit a
    moment early only delays the wake-up to the worker's own half-second poll."""

    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake
        self._owed = False

    def owe(self) -> None:
        self._owed = True

    def committed(self) -> None:
        if self._owed:
            self._owed = False
            self._wake.set()


class RoundWorker:
    """Runs `deliver_due()` rounds back to back while there is work, otherwise waits for a
    wake-up or half a second. A stop lets the round in flight finish: what it sends is
    recorded, not resent after a restart (the learner mail ends its round early: the mails
    in flight are recorded and the round's unsent rows handed back, due at once)."""

    name = "delivery"

    def __init__(self, wake: asyncio.Event) -> None:
        self._wake = wake
        self._stopping = False
        self.counts = DeliveryCounts()

    async def deliver_due(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                if await self.deliver_due() > 0:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logs.failure(log, "%s round failed", exc, self.name)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            except TimeoutError:
                pass
            self._wake.clear()
