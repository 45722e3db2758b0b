"""Composition of the employer feed inside notify: its consumers, its delivery loop and its
HTTP routes. main.py calls `install` and `routes`; everything else stays here."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_notify import audit, employers, feed, projection, subscriptions
from microcred_notify.ratelimit import RateLimiter
from microcred_notify.webhook_crypto import SecretBox
from microcred_notify.webhooks import Policy, WebhookWorker
from microcred_shared import netguard, topics
from microcred_shared.auth import operator_dependency
from microcred_shared.consumer import BatchHandler
from microcred_shared.events import CredentialIssued
from microcred_shared.events_learners import CredentialVisibilityChanged
from microcred_shared.runtime import ServiceRuntime

if TYPE_CHECKING:
    from microcred_notify.settings import Settings


class EmployerFeed:
    def __init__(self, rt: ServiceRuntime, settings: Settings) -> None:
        self.rt, self.settings = rt, settings
        self.base_url = settings.public_base_url.rstrip("/")
        self.box = SecretBox(settings.secret_key_bytes)
        self.wake = asyncio.Event()
        self.worker: WebhookWorker | None = None
        self._limiter: RateLimiter | None = None
        self._verifier: employers.EmployerKeyVerifier | None = None
        self._task: asyncio.Task[None] | None = None

    def engine(self) -> AsyncEngine:
        assert self.rt.engine is not None
        return self.rt.engine

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = RateLimiter(self.engine(),
                                        rate=self.settings.employer_rate_per_second,
                                        burst=self.settings.employer_rate_burst)
        return self._limiter

    def verifier(self) -> employers.EmployerKeyVerifier:
        if self._verifier is None:
            self._verifier = employers.EmployerKeyVerifier(self.engine())
        return self._verifier

    def status_handler(self) -> BatchHandler:
        return partial(projection.on_status_changed, base_url=self.base_url)

    async def start(self, rt: ServiceRuntime) -> None:
        s = self.settings
        self.worker = WebhookWorker(
            self.engine(), box=self.box, limiter=self.limiter(), wake=self.wake,
            policy=Policy(s.webhook_max_attempts, s.webhook_retry_base_seconds,
                          s.webhook_disable_after_failures),
            on_published=lambda: rt.relay.wake() if rt.relay else None,
            destinations=netguard.Policy(allow_loopback=s.webhooks_allow_loopback_http))
        self._task = rt.background(self.worker.run())

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


def install(rt: ServiceRuntime, settings: Settings) -> EmployerFeed:
    """Subscribe the credential projection (the status topic is chained by main.py with the
    learner mail, one consumer group per topic) and run the delivery loop."""
    feed_ = EmployerFeed(rt, settings)
    rt.subscribe(topics.CREDENTIALS_ISSUED,
                 partial(projection.on_issued, base_url=feed_.base_url), CredentialIssued)
    rt.subscribe(topics.CREDENTIAL_VISIBILITY,
                 partial(projection.on_visibility, base_url=feed_.base_url),
                 CredentialVisibilityChanged)
    rt.on_start(feed_.start)
    rt.on_stop(feed_.stop)
    rt.commit_listeners.append(feed_.wake.set)
    return feed_


def routes(app: FastAPI, feed_: EmployerFeed) -> None:
    token = feed_.settings.operator_token
    operator = operator_dependency(token.get_secret_value() if token else None)
    employer = employers.employer_dependency(feed_.verifier)
    employers.routes(app, feed_.engine, operator,
                     lambda: feed_.rt.relay.wake() if feed_.rt.relay else None)
    subscriptions.routes(app, feed_.engine, employer, feed_.box,
                         feed_.settings.webhooks_allow_loopback_http)
    feed.routes(app, feed_.engine, employer, feed_.limiter)
    audit.routes(app, feed_.engine, operator, feed_.wake.set)
