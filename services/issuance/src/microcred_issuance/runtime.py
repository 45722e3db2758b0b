"""The issuance process's runtime: the shared one plus the keys, catalogue and signers
main.build wires in, declared so routes and hooks are type-checked against it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microcred_issuance.handlers import ListSigner
from microcred_issuance.keystore import KeyStore, SigningKey
from microcred_issuance.settings import Settings
from microcred_shared.auth import KeyVerifier
from microcred_shared.projection import LiveCatalog
from microcred_shared.runtime import ServiceRuntime

# (document, key, cryptosuite or None for the configured one) -> signed document
SuiteSigner = Callable[[dict[str, Any], SigningKey, str | None], dict[str, Any]]


class IssuanceRuntime(ServiceRuntime):
    settings: Settings
    # Set by main.build (signers) and its start hook (the rest), before any route or
    # subscriber runs.
    sign: SuiteSigner
    sign_list: ListSigner
    keys: KeyStore
    key_verifier: KeyVerifier
    catalog: LiveCatalog
