"""Composition root of the issuance service."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import col

from microcred_issuance import api, credential, status
from microcred_issuance.handlers import Issuing, ListSigner, on_decisions
from microcred_issuance.keystore import KeyStore, SigningKey
from microcred_issuance.models import MIGRATIONS, StatusList
from microcred_issuance.providers import on_providers
from microcred_issuance.runtime import IssuanceRuntime
from microcred_issuance.settings import Settings
from microcred_shared import outbox, projection, topics
from microcred_shared.auth import KeyVerifier, on_api_keys
from microcred_shared.events import (
    AssessmentDecided,
    IssuerKeysPublished,
    IssuerPublicKey,
    ProviderApiKeyChanged,
)
from microcred_shared.events_providers import DefinitionPublished, ProviderPublished
from microcred_shared.projection import LiveCatalog
from microcred_shared.vc import proofs

SOURCE = "/microcred/issuance"
log = logging.getLogger(__name__)


def build(settings: Settings | None = None) -> tuple[FastAPI, IssuanceRuntime]:
    settings = settings or Settings()
    rt = IssuanceRuntime(settings, MIGRATIONS)
    base = settings.public_base_url.rstrip("/")

    def sign(doc: dict[str, Any], key: SigningKey, suite: str | None = None) -> dict[str, Any]:
        vm = f"{credential.issuer_id(base, key.provider_id)}#{key.key_id}"
        return proofs.sign(doc, key.private, vm, cryptosuite=suite or settings.cryptosuite)

    def sign_list(doc: dict[str, Any], provider_id: str) -> dict[str, Any]:
        return sign(doc, rt.keys.active(provider_id))

    rt.sign, rt.sign_list = sign, sign_list

    async def start(r: IssuanceRuntime) -> None:
        assert r.engine is not None
        store = KeyStore(r.engine, settings.kek_bytes)
        r.keys = store
        r.key_verifier = KeyVerifier(r.engine)
        live = LiveCatalog(r.engine)
        r.catalog = live
        await live.refresh(force=True)
        await store.ensure_active([])  # load the keys; new providers get theirs on arrival
        known = [p.id for p in live.current.providers]
        await publish_keys(r, store, {p: profile(r, p) for p in known})
        await publish_status_lists(r, base, sign_list, initial=True)
        r.background(refresh_status_lists(r, base, sign_list))
        r.background(follow_rotations(store))
        r.background(live.follow())
        r.commit_listeners.append(live.poke)
        ctx = Issuing(live=live, keys=store, sign=sign, sign_list=sign_list, base_url=base)
        r.subscribe(topics.PROVIDERS, partial(on_providers, keys=store, base_url=base),
                    ProviderPublished)
        r.subscribe(topics.DEFINITIONS, projection.on_definitions, DefinitionPublished)
        r.subscribe(topics.DECISIONS, partial(on_decisions, ctx=ctx), AssessmentDecided)
        r.subscribe(topics.PROVIDER_API_KEYS, on_api_keys, ProviderApiKeyChanged)

    rt.on_start(start)
    return rt.app("microcred issuance", api.routes), rt


def profile(rt: IssuanceRuntime, provider_id: str) -> dict[str, Any]:
    provider = rt.catalog.current.provider(provider_id)
    assert provider is not None
    return credential.issuer_profile(provider, rt.settings.public_base_url.rstrip("/"))


async def publish_keys(rt: IssuanceRuntime, store: KeyStore,
                       profiles: dict[str, dict[str, Any]]) -> None:
    """Announce providers' public keys; the registry serves them as controller documents.
    Compacted topic: republishing at each start is harmless."""
    records = []
    for provider_id, prof in profiles.items():
        keys = [IssuerPublicKey.model_validate(k) for k in await store.public_keys(provider_id)]
        event = IssuerKeysPublished(provider_id=provider_id, profile=prof, keys=keys,
                                    published_at=datetime.now(UTC))
        records.append(outbox.event_record(topics.ISSUER_KEYS, event, SOURCE, traceparent=None))
    assert rt.engine is not None
    async with rt.engine.begin() as conn:
        await outbox.write(conn, records)


async def publish_status_lists(rt: IssuanceRuntime, base: str, sign_list: ListSigner, *,
                               initial: bool = False, older_than: timedelta | None = None,
                               ) -> int:
    """(Re)sign status lists: at start every provider that has a key has its first lists
    served; later, lists not re-signed for a while are refreshed before they expire."""
    assert rt.engine is not None
    async with rt.engine.begin() as conn:
        if initial:
            for provider_id in rt.keys.providers():
                await status.ensure_lists(conn, provider_id, {0})
        query = sa.select(col(StatusList.provider_id), col(StatusList.purpose),
                          col(StatusList.list_no))
        if older_than is not None:
            query = query.where(col(StatusList.updated_at) < datetime.now(UTC) - older_than)
        rows = (await conn.execute(query)).all()
        records = [await status.publish(conn, provider_id=r.provider_id, purpose=r.purpose,
                                        list_no=r.list_no, base_url=base, sign=sign_list)
                   for r in rows]
        if older_than is not None and rows:
            await conn.execute(sa.update(StatusList).where(sa.tuple_(
                col(StatusList.provider_id), col(StatusList.purpose), col(StatusList.list_no)).in_(
                [tuple(r) for r in rows])).values(updated_at=datetime.now(UTC)))
        await outbox.write(conn, records)
    return len(records)


async def follow_rotations(store: KeyStore, every: float = 5.0) -> None:
    """With several issuance instances, a rotation done by one reaches the others within
    `every` seconds (the rotating instance switches at once)."""
    while True:
        await asyncio.sleep(every)
        try:
            await store.refresh()
        except Exception:
            log.exception("could not reload issuer keys")


async def refresh_status_lists(rt: IssuanceRuntime, base: str, sign_list: ListSigner,
                               ) -> None:
    while True:
        await asyncio.sleep(3600)
        try:
            await publish_status_lists(rt, base, sign_list, older_than=status.VALIDITY / 2)
        except Exception:
            log.exception("status list refresh failed; next try in an hour")
