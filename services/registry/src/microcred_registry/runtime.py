"""The registry process's runtime: the shared one with this service's settings, declared
so routes and hooks are type-checked against it (the registry has no start hook of its
own)."""

from __future__ import annotations

from microcred_registry.settings import Settings
from microcred_shared.runtime import ServiceRuntime


class RegistryRuntime(ServiceRuntime):
    settings: Settings

    def wake_relay(self) -> None:
        """After a transaction that wrote to the outbox: publish now, not at the next poll."""
        if self.relay:
            self.relay.wake()
