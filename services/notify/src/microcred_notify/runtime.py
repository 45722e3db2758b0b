"""The notify process's runtime: the shared one plus the long-lived parts of its two
contexts, declared so routes, dependencies and hooks are type-checked against it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_notify.employer_feed.lifecycle import EmployerFeed
from microcred_notify.learner_mail.lifecycle import LearnerMail
from microcred_notify.settings import Settings
from microcred_shared.db import Migration
from microcred_shared.runtime import ServiceRuntime


class NotifyRuntime(ServiceRuntime):
    settings: Settings

    def __init__(self, settings: Settings, migrations: Sequence[Migration]) -> None:
        super().__init__(settings, migrations)
        self.mail = LearnerMail(settings)
        self.employers = EmployerFeed(settings, settings.public_base_url)

    @property
    def db(self) -> AsyncEngine:
        """The engine, once the runtime started (routes are only served after that)."""
        assert self.engine is not None
        return self.engine

    def published(self) -> None:
        """Wake the outbox relay after a commit that wrote to the outbox."""
        if self.relay:
            self.relay.wake()
