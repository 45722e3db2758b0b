"""The registry process's runtime: the shared one with this service's settings, declared
so routes and hooks are type-checked against it (the registry has no start hook of its
own)."""

from __future__ import annotations

from microcred_registry.employers.keys import EmployerKeys
from microcred_registry.settings import Settings
from microcred_shared.auth import KeyVerifier
from microcred_shared.runtime import ServiceRuntime


class RegistryRuntime(ServiceRuntime):
    settings: Settings
    _provider_keys: KeyVerifier | None = None
    _employer_keys: EmployerKeys | None = None

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
