"""The notify process's runtime: the shared one plus the mail deliverer main.build's start
hook runs, declared so routes and hooks are type-checked against it."""

from __future__ import annotations

import asyncio

from microcred_notify.handlers import Deliverer
from microcred_notify.settings import Settings
from microcred_shared.runtime import ServiceRuntime


class NotifyRuntime(ServiceRuntime):
    settings: Settings
    # Set by main.build's start hook, before any subscriber runs; read by its stop hook.
    deliverer: Deliverer
    delivery_task: asyncio.Task[None]
