"""Composition root of the registry service: the runtime, its Kafka subscriptions, and the
routers of its contexts."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from microcred_registry.credentials import handlers as credentials
from microcred_registry.credentials.routes import router as credentials_router
from microcred_registry.delivery.handlers import mail_exchanges
from microcred_registry.delivery.routes import router as delivery_router
from microcred_registry.employers.handlers import on_employer_published
from microcred_registry.employers.keys import on_employer_keys
from microcred_registry.migrations import MIGRATIONS
from microcred_registry.ob_api.routes import router as ob_api_router
from microcred_registry.oid4vci.routes import router as oid4vci_router
from microcred_registry.pages.badge_routes import router as badge_router
from microcred_registry.pages.learner_routes import router as learner_pages_router
from microcred_registry.pages.routes import router as pages_router
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.settings import Settings
from microcred_registry.trust.routes import router as trust_router
from microcred_registry.verification.routes import router as verification_router
from microcred_registry.wallet.routes import router as wallet_router
from microcred_shared import projection
from microcred_shared.auth import on_api_keys
from microcred_shared.contract import topics
from microcred_shared.contract.events import (
    CredentialIssued,
    CredentialStatusChanged,
    IssuerKeysPublished,
    ProviderApiKeyChanged,
    StatusListPublished,
)
from microcred_shared.contract.events_employers import EmployerApiKeyChanged, EmployerPublished
from microcred_shared.contract.events_providers import ProviderPublished


def build(settings: Settings | None = None) -> tuple[FastAPI, RegistryRuntime]:
    settings = settings or Settings()
    rt = RegistryRuntime(settings, MIGRATIONS)
    base = settings.public_base_url.rstrip("/")
    # The issue mail's "Add to wallet" link, where wallet delivery is configured (ADR 31).
    wallet_links = partial(mail_exchanges, base_url=base, ttl=timedelta(
        seconds=settings.mail_exchange_ttl_seconds)) if settings.service_token else None
    rt.subscribe(topics.CREDENTIALS_ISSUED, partial(
        credentials.on_issued, base_url=base, wallet_links=wallet_links), CredentialIssued)
    rt.subscribe(topics.ISSUER_KEYS, credentials.on_issuer_keys, IssuerKeysPublished)
    rt.subscribe(topics.STATUS_LISTS, credentials.on_status_list, StatusListPublished)
    rt.subscribe(topics.CREDENTIAL_STATUS, credentials.on_status_changed,
                 CredentialStatusChanged)
    rt.subscribe(topics.EMPLOYERS, on_employer_published, EmployerPublished)
    # Providers' API keys: an issuer reads its own credentials whatever their visibility.
    rt.subscribe(topics.PROVIDER_API_KEYS, on_api_keys, ProviderApiKeyChanged)
    # Employers' API keys: an approved employer reads what learners share with it.
    rt.subscribe(topics.EMPLOYER_API_KEYS, on_employer_keys, EmployerApiKeyChanged)
    # Providers: the trust list of those in good standing (ADR 26).
    rt.subscribe(topics.PROVIDERS, projection.on_providers, ProviderPublished)
    # No two routes of these routers match the same request, so their order is free.
    return rt.app("microcred registry", routers=[
        credentials_router, verification_router, pages_router, wallet_router,
        learner_pages_router, badge_router, trust_router, oid4vci_router,
        delivery_router, ob_api_router]), rt
