"""Composition root of the issuance service: builds the runtime, binds each context's use
cases to it, subscribes the consumers and mounts the routers. No business logic here."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from microcred_issuance.issuing import routes as issuing_routes
from microcred_issuance.issuing.handlers import Issuing, on_decisions
from microcred_issuance.keys import routes as keys_routes
from microcred_issuance.keys.handlers import follow_rotations, on_providers, publish_keys
from microcred_issuance.keys.keystore import KeyStore
from microcred_issuance.keys.signing import Signer
from microcred_issuance.migrations import MIGRATIONS
from microcred_issuance.runtime import IssuanceRuntime
from microcred_issuance.settings import Settings
from microcred_issuance.stacks.handlers import FollowStatus
from microcred_issuance.status import routes as status_routes
from microcred_issuance.status.handlers import publish_status_lists, refresh_status_lists
from microcred_shared import projection
from microcred_shared.auth import KeyVerifier, on_api_keys
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentDecided, ProviderApiKeyChanged
from microcred_shared.contract.events_providers import DefinitionPublished, ProviderPublished
from microcred_shared.projection import LiveCatalog


def build(settings: Settings | None = None) -> tuple[FastAPI, IssuanceRuntime]:
    settings = settings or Settings()
    rt = IssuanceRuntime(settings, MIGRATIONS)
    rt.on_start(start)
    return rt.app("microcred issuance", routers=[
        issuing_routes.router, status_routes.router, keys_routes.router]), rt


async def start(rt: IssuanceRuntime) -> None:
    assert rt.engine is not None
    keys = rt.keys = KeyStore(rt.engine, rt.settings.kek_bytes)
    signer = rt.signer = Signer(keys, rt.base_url, rt.settings.cryptosuite)
    rt.key_verifier = KeyVerifier(rt.engine)
    live = rt.catalog = LiveCatalog(rt.engine)
    # Stacks made of a credential follow its status changes (ADR 12).
    rt.status_followers = [FollowStatus(live, signer)]
    await live.refresh(force=True)
    await keys.ensure_active([])  # load the keys; new providers get theirs on arrival
    await publish_keys(rt.engine, keys, list(live.current.providers), rt.base_url)
    await publish_status_lists(rt.engine, signer, initial=True)
    rt.background(refresh_status_lists(rt.engine, signer))
    rt.background(follow_rotations(keys))
    rt.background(live.follow())
    # Only the catalogue's own subscriptions change it: a reload after every decisions
    # batch was a catalogue query per batch for nothing (it still polls every 2 s).
    rt.after_commit(topics.PROVIDERS, live.poke)
    rt.after_commit(topics.DEFINITIONS, live.poke)
    rt.subscribe(topics.PROVIDERS, partial(on_providers, keys=keys, base_url=rt.base_url),
                 ProviderPublished)
    rt.subscribe(topics.DEFINITIONS, projection.on_definitions, DefinitionPublished)
    rt.subscribe(topics.DECISIONS, partial(on_decisions, ctx=Issuing(live, keys, signer)),
                 AssessmentDecided)
    rt.subscribe(topics.PROVIDER_API_KEYS, on_api_keys, ProviderApiKeyChanged)
