"""The learner mail's long-lived parts: the SMTP pool and the delivery worker, started and
stopped with the process (main.build registers `start` and `stop`)."""

from __future__ import annotations

import asyncio

from prometheus_client.core import CounterMetricFamily, Metric

from microcred_notify.learner_mail.delivery import Deliverer, Handoff
from microcred_notify.learner_mail.settings import MailSettings
from microcred_notify.learner_mail.smtp import SmtpPool
from microcred_notify.worker import DeliveryCounts, Owed
from microcred_shared.runtime import ServiceRuntime


class LearnerMail:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self.pool = SmtpPool(settings.smtp_host, settings.smtp_port, settings.smtp_connections)
        # Set after a committed batch that owes mail: the worker need not wait.
        self.wake = asyncio.Event()
        # Rows the credentials.registered consumer inserted leased to this instance, handed
        # over once committed; the other mail (status, sign-in, wallet) is claimed.
        self.handoff = Handoff(self.wake)
        self.owed = Owed(self.handoff.owe_claim)
        self.deliverer: Deliverer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, rt: ServiceRuntime) -> None:
        assert rt.engine is not None and rt.relay is not None
        s = self.settings
        self.deliverer = Deliverer(rt.engine, self.pool, sender=s.smtp_from,
                                   max_attempts=s.max_attempts, retry_base=s.retry_base_seconds,
                                   wake=self.wake, on_published=rt.relay.wake,
                                   connections=s.smtp_connections, handoff=self.handoff)
        self._task = rt.background(self.deliverer.run())

    def metrics(self) -> list[Metric]:
        """This instance's mail outcomes at /metrics (a metric source of the runtime)."""
        c = self.deliverer.counts if self.deliverer else DeliveryCounts()
        # Where the delivery loop waited: its group commits and its SMTP exchanges.
        timings = [] if self.deliverer is None else [
            self.deliverer.commit_seconds.family(
                "microcred_mail_group_commit_seconds",
                "Statements recording a group of mail outcomes (WAL flush included)"),
            self.deliverer.send_seconds.family(
                "microcred_mail_send_seconds", "SMTP exchanges of one mail")]
        return [
            *timings,
            CounterMetricFamily("microcred_mail_delivered",
                                "Learner mails the SMTP relay accepted", value=c.delivered),
            CounterMetricFamily("microcred_mail_attempts_failed",
                                "Mail attempts that failed and will be retried",
                                value=c.attempts_failed),
            CounterMetricFamily("microcred_mail_dead_lettered",
                                "Mails given up after their last attempt and dead-lettered",
                                value=c.dead_lettered),
        ]

    async def stop(self, rt: ServiceRuntime) -> None:
        if self.deliverer is not None:
            self.deliverer.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 15)
            except TimeoutError:
                pass
        if self.deliverer is not None:
            await self.deliverer.hand_back()
        await self.pool.close()
