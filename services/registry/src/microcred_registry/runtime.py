"""The registry process's runtime: the shared one with this service's settings, declared
so routes and hooks are type-checked against it (the registry has no start hook of its
own)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.employers.keys import EmployerKeys
from microcred_registry.reads import read_engine
from microcred_registry.settings import Settings
from microcred_shared.auth import KeyVerifier
from microcred_shared.runtime import ServiceRuntime


class RegistryRuntime(ServiceRuntime):
    settings: Settings
    _provider_keys: KeyVerifier | None = None
    _employer_keys: EmployerKeys | None = None
    _reads: AsyncEngine | None = None

    @property
    def reads(self) -> AsyncEngine:
        """The engine of the hot reads (microcred_registry.reads): the same database, one
        round trip per read. Made on first use, disposed when the service stops."""
        if self._reads is None:
            assert self.engine is not None, "the service has not started"
            self._reads = read_engine(self.engine)
            self.on_stop(RegistryRuntime._close_reads)
        return self._reads

    async def _close_reads(self) -> None:
        if self._reads is not None:
            await self._reads.dispose()
            self._reads = None

    def wake_relay(self) -> None:
        """After a transaction that wrote to the outbox: publish now, not at the next poll."""
        if self.relay:
            self.relay.wake()

    @property
    def provider_keys(self) -> KeyVerifier:
        """Provider API keys (`mcp_...`), checked against the registry's own projection of
        `microcred.providers.api-keys.v1`: an issuer reads its credentials whatever their
        visibility."""
        if self._provider_keys is None:
            assert self.engine is not None, "the service has not started"
            self._provider_keys = KeyVerifier(self.engine)
        return self._provider_keys

    @property
    def employer_keys(self) -> EmployerKeys:
        """Employer API keys (`mce_...`), checked against the registry's projection of
        `microcred.employers.api-keys.v1` and its copy of the directory: an approved
        employer reads what learners share with it."""
        if self._employer_keys is None:
            assert self.engine is not None, "the service has not started"
            self._employer_keys = EmployerKeys(self.engine)
        return self._employer_keys
