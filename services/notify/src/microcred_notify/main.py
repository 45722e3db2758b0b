"""Composition root of the notify service."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from microcred_notify import employer_wiring, learner_mail
from microcred_notify.handlers import Deliverer, on_registered, on_status_changed
from microcred_notify.models import MIGRATIONS
from microcred_notify.projection import chain
from microcred_notify.runtime import NotifyRuntime
from microcred_notify.settings import Settings
from microcred_notify.smtp import SmtpPool
from microcred_shared import topics
from microcred_shared.events import CredentialRegistered, CredentialStatusChanged
from microcred_shared.events_learners import LearnerSignInRequested


def build(settings: Settings | None = None) -> tuple[FastAPI, NotifyRuntime]:
    settings = settings or Settings()
    rt = NotifyRuntime(settings, MIGRATIONS)
    wake = asyncio.Event()
    pool = SmtpPool(settings.smtp_host, settings.smtp_port, settings.smtp_connections)

    async def start(r: NotifyRuntime) -> None:
        assert r.engine is not None and r.relay is not None
        deliverer = Deliverer(r.engine, pool, sender=settings.smtp_from,
                              max_attempts=settings.max_attempts,
                              retry_base=settings.retry_base_seconds, wake=wake,
                              on_published=r.relay.wake)
        r.deliverer = deliverer
        r.delivery_task = r.background(deliverer.run())

    async def stop(r: NotifyRuntime) -> None:
        r.deliverer.stop()
        try:
            await asyncio.wait_for(asyncio.shield(r.delivery_task), 15)
        except TimeoutError:
            pass
        await pool.close()

    rt.subscribe(topics.CREDENTIALS_REGISTERED, on_registered, CredentialRegistered)
    rt.subscribe(topics.LEARNER_SIGNIN, learner_mail.on_signin_requested, LearnerSignInRequested)
    employers = employer_wiring.install(rt, settings)
    # One consumer group per topic: the learner mail and the employer feed share it.
    rt.subscribe(topics.CREDENTIAL_STATUS, chain(on_status_changed, employers.status_handler()),
                 CredentialStatusChanged)
    rt.on_start(start)
    rt.on_stop(stop)
    rt.commit_listeners.append(wake.set)
    app = rt.app("microcred notify")
    employer_wiring.routes(app, employers)
    return app, rt
