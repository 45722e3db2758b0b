"""Composition root of the notify service: its two contexts, learner mail and employer feed,
their Kafka subscriptions, background workers and HTTP routes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_notify.employer_feed import handlers as feed
from microcred_notify.employer_feed.routes import router as employer_routes
from microcred_notify.learner_mail import handlers as learner
from microcred_notify.learner_mail.delivery import LEASE
from microcred_notify.models import MIGRATIONS
from microcred_notify.runtime import NotifyRuntime
from microcred_notify.settings import Settings
from microcred_notify.worker import Owed
from microcred_shared.consumer import BatchHandler, Incoming
from microcred_shared.contract import topics
from microcred_shared.contract.events import (
    CredentialIssued,
    CredentialRegistered,
    CredentialStatusChanged,
)
from microcred_shared.contract.events_learners import CredentialVisibilityChanged


def build(settings: Settings | None = None) -> tuple[FastAPI, NotifyRuntime]:
    settings = settings or Settings()
    rt = NotifyRuntime(settings, MIGRATIONS)
    base_url = rt.employers.base_url
    # Each worker is woken after a commit that owed it work (not after every commit): the
    # mark is the subscription's own, so another topic's commit cannot take it (`Owed`).
    mail, hooks = rt.mail.owed, rt.employers.owed

    def marks(owed: Owed, topic: str) -> Callable[[], None]:
        """The mark `topic`'s handlers set; `topic`'s own commits wake the worker."""
        rt.after_commit(topic, partial(owed.committed, topic))
        return partial(owed.owe, topic)

    # The credential mail: rows inserted leased to this instance and handed to its
    # delivery loop once committed (no claim, no wake-up mark; ADR 4).
    rt.subscribe(topics.CREDENTIALS_REGISTERED,
                 partial(learner.on_registered, hand=rt.mail.handoff.hand,
                         lease=LEASE.total_seconds()),
                 CredentialRegistered)
    # Sign-in links and wallet transaction codes (either type; anything else dead-letters).
    rt.subscribe(topics.LEARNER_SIGNIN,
                 owing(learner.on_learner_messages, marks(mail, topics.LEARNER_SIGNIN)),
                 None)
    # The employer feed takes a credential's document from the visibility change that first
    # lets an employer see it (ADR 10); credentials.issued only while upgrading from a
    # registry whose visibility events carry none.
    if settings.employer_feed_reads_issued:
        rt.subscribe(topics.CREDENTIALS_ISSUED,
                     partial(feed.on_issued, base_url=base_url,
                             owe=marks(hooks, topics.CREDENTIALS_ISSUED)), CredentialIssued)
    rt.subscribe(topics.CREDENTIAL_VISIBILITY,
                 partial(feed.on_visibility, base_url=base_url,
                         owe=marks(hooks, topics.CREDENTIAL_VISIBILITY)),
                 CredentialVisibilityChanged)
    # One consumer group per topic: the learner mail and the employer feed share it.
    rt.subscribe(topics.CREDENTIAL_STATUS,
                 chain(owing(learner.on_status_changed,
                             marks(mail, topics.CREDENTIAL_STATUS)),
                       partial(feed.on_status_changed, base_url=base_url,
                               owe=marks(hooks, topics.CREDENTIAL_STATUS))),
                 CredentialStatusChanged)
    for part in (rt.employers, rt.mail):  # stopped in this order too: webhooks, then mail
        rt.on_start(part.start)
        rt.on_stop(part.stop)
        rt.metric_sources.append(part.metrics)
    return rt.app("microcred notify", routers=[employer_routes]), rt


def owing(handler: BatchHandler, owe: Callable[[], None]) -> BatchHandler:
    """A handler that may owe mail: its worker is woken once the batch commits."""

    async def handle(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
        refused = await handler(conn, items)
        if len(refused) < len(items):
            owe()
        return refused

    return handle


def chain(*handlers: BatchHandler) -> BatchHandler:
    """Several use cases on one topic (one consumer group per topic): run each in turn on
    the same transaction; an item refused by any is refused."""

    async def handle(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
        refused: dict[int, str] = {}
        for handler in handlers:
            refused |= await handler(conn, items)
        return refused

    return handle
