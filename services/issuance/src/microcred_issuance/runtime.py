"""The issuance process's runtime: the shared one plus what main wires in, declared so that
routes and hooks are type-checked against it. It imports only the keys context (the
lowest): every context's routes reach it through deps, and must not reach a context above
their own through it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance.keys.keystore import KeyStore
from microcred_issuance.keys.signing import Signer
from microcred_issuance.settings import Settings
from microcred_shared.auth import KeyVerifier
from microcred_shared.outbox import Outgoing
from microcred_shared.projection import LiveCatalog
from microcred_shared.runtime import ServiceRuntime

# status.handlers.Follower, its change (a status.domain.Changed) typed loosely here.
StatusFollower = Callable[[AsyncConnection, Any, str | None], Awaitable[list[Outgoing]]]


class IssuanceRuntime(ServiceRuntime):
    settings: Settings
    # Set by main.build (signer, followers) and its start hook (the rest), before any route
    # or subscriber runs.
    signer: Signer
    status_followers: list[StatusFollower]
    keys: KeyStore
    key_verifier: KeyVerifier
    catalog: LiveCatalog

    @property
    def base_url(self) -> str:
        return self.settings.public_base_url.rstrip("/")
