"""The loop shared by notify's delivery workers (learner mail, employer webhooks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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
    marks it (`owe`) inside its subscription's transaction, that subscription's commit
    listener (`committed`, registered with `rt.after_commit`) wakes the worker. Every commit
    of every topic used to wake both workers, i.e. a claim query per batch whatever it
    carried.

    The marks are kept per subscription. With one mark for all of them, another topic's
    commit between a handler's `owe` and its own transaction's commit took the mark: the
    worker woke before the rows were there and nothing woke it when they were, so those
    rows waited for the worker's half-second poll (at 500 results/s, `credentials.issued`
    and `credentials.registered` commit tens of times a second each, issue 12). A
    subscription applies one batch at a time, so its mark and its commit cannot cross.
    `wake`: how the worker is woken (the learner mail's also says a claim is owed)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._owed: set[str] = set()

    def owe(self, subscription: str) -> None:
        self._owed.add(subscription)

    def committed(self, subscription: str) -> None:
        if subscription in self._owed:
            self._owed.discard(subscription)
            self._wake()


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

    async def next_round(self) -> int:
        """The loop's next round (`deliver_due()` unless a worker knows better)."""
        return await self.deliver_due()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                if await self.next_round() > 0:
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
