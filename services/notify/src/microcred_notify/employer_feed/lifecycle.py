"""The employer feed's long-lived parts: the secret box, the per-employer rate limiter, the
API key verifier and the webhook delivery worker, started and stopped with the process
(main.build registers `start` and `stop`)."""

from __future__ import annotations

import asyncio

from prometheus_client.core import CounterMetricFamily, Metric

from microcred_notify.employer_feed.crypto import SecretBox
from microcred_notify.employer_feed.employers import EmployerKeyVerifier
from microcred_notify.employer_feed.ratelimit import RateLimiter
from microcred_notify.employer_feed.settings import EmployerSettings
from microcred_notify.employer_feed.webhooks import Policy, WebhookWorker
from microcred_notify.worker import DeliveryCounts, Owed
from microcred_shared import netguard
from microcred_shared.runtime import ServiceRuntime


class EmployerFeed:
    def __init__(self, settings: EmployerSettings, public_base_url: str) -> None:
        self.settings = settings
        # Credential links in employer events point at this deployment's public address.
        self.base_url = public_base_url.rstrip("/")
        self.box = SecretBox(settings.secret_key_bytes)
        # Set after each replay and each committed batch that wrote webhook deliveries.
        self.wake = asyncio.Event()
        self.owed = Owed(self.wake.set)
        self.worker: WebhookWorker | None = None
        self._limiter: RateLimiter | None = None
        self._verifier: EmployerKeyVerifier | None = None
        self._task: asyncio.Task[None] | None = None

    def limiter(self, rt: ServiceRuntime) -> RateLimiter:
        if self._limiter is None:
            assert rt.engine is not None
            self._limiter = RateLimiter(rt.engine, rate=self.settings.employer_rate_per_second,
                                        burst=self.settings.employer_rate_burst)
        return self._limiter

    def verifier(self, rt: ServiceRuntime) -> EmployerKeyVerifier:
        if self._verifier is None:
            assert rt.engine is not None
            self._verifier = EmployerKeyVerifier(rt.engine)
        return self._verifier

    async def start(self, rt: ServiceRuntime) -> None:
        s = self.settings
        assert rt.engine is not None
        self.worker = WebhookWorker(
            rt.engine, box=self.box, limiter=self.limiter(rt), wake=self.wake,
            policy=Policy(s.webhook_max_attempts, s.webhook_retry_base_seconds,
                          s.webhook_disable_after_failures),
            on_published=lambda: rt.relay.wake() if rt.relay else None,
            destinations=netguard.Policy(allow_loopback=s.webhooks_allow_loopback_http))
        self._task = rt.background(self.worker.run())

    def metrics(self) -> list[Metric]:
        """This instance's webhook outcomes at /metrics (a metric source of the runtime)."""
        c = self.worker.counts if self.worker else DeliveryCounts()
        return [
            CounterMetricFamily("microcred_webhook_delivered",
                                "Webhook deliveries an employer's endpoint accepted (2xx)",
                                value=c.delivered),
            CounterMetricFamily("microcred_webhook_attempts_failed",
                                "Webhook attempts that failed and will be retried",
                                value=c.attempts_failed),
            CounterMetricFamily("microcred_webhook_dead_lettered",
                                "Webhook deliveries given up and dead-lettered",
                                value=c.dead_lettered),
            CounterMetricFamily("microcred_webhook_endpoints_disabled",
                                "Employer webhook endpoints disabled after failing",
                                value=self.worker.endpoints_disabled if self.worker else 0),
        ]

    async def stop(self, rt: ServiceRuntime) -> None:
        if self.worker is None:
            return
        self.worker.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 15)
            except TimeoutError:
                pass
        await self.worker.close()
