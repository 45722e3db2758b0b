"""The registry process's runtime: the shared one with this service's settings, declared
so routes and hooks are type-checked against it (the registry has no start hook of its
own)."""

from __future__ import annotations

from microcred_registry.settings import Settings
from microcred_shared.runtime import ServiceRuntime


class RegistryRuntime(ServiceRuntime):
    settings: Settings
