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
