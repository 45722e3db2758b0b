"""Composition root of the issuance service."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import FastAPI
from microcred_shared import outbox, topics
from microcred_shared.catalog import load_catalog
from microcred_shared.events import AssessmentDecided, IssuerKeysPublished, IssuerPublicKey
from microcred_shared.runtime import ServiceRuntime
from microcred_shared.vc import proofs

from microcred_issuance import credential
from microcred_issuance.handlers import on_decisions
from microcred_issuance.keystore import KeyStore, SigningKey
from microcred_issuance.models import MIGRATIONS
from microcred_issuance.settings import Settings

SOURCE = "/microcred/issuance"


def build(settings: Settings | None = None) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or Settings()  # type: ignore[call-arg]
    rt = ServiceRuntime(settings, MIGRATIONS)
    catalog = load_catalog(settings.seed_file)
    base = settings.public_base_url.rstrip("/")
    profiles = {p.id: credential.issuer_profile(p, base) for p in catalog.providers}

    def sign(doc: dict[str, Any], key: SigningKey) -> dict[str, Any]:
        vm = f"{credential.issuer_id(base, key.provider_id)}#{key.key_id}"
        return proofs.sign(doc, key.private, vm, cryptosuite=settings.cryptosuite)

    async def start(r: ServiceRuntime) -> None:
        assert r.engine is not None
        store = KeyStore(r.engine, settings.kek_bytes)
        r.keys = store  # type: ignore[attr-defined]
        await store.ensure_active([p.id for p in catalog.providers])
        await publish_keys(r, store, profiles)
        r.subscribe(topics.DECISIONS, partial(
            on_decisions, catalog=catalog, keys=store, sign=sign, base_url=base,
            profiles=profiles), AssessmentDecided)

    rt.on_start(start)
    return rt.app("microcred issuance"), rt


async def publish_keys(rt: ServiceRuntime, store: KeyStore,
                       profiles: dict[str, dict[str, Any]]) -> None:
    """Announce every provider's public keys; the registry serves them as controller
    documents. Compacted topic: republishing at each start is harmless."""
    records = []
    for provider_id, profile in profiles.items():
        keys = [IssuerPublicKey.model_validate(k) for k in await store.public_keys(provider_id)]
        event = IssuerKeysPublished(provider_id=provider_id, profile=profile, keys=keys,
                                    published_at=datetime.now(UTC))
        records.append(outbox.event_record(topics.ISSUER_KEYS, event, SOURCE, traceparent=None))
    assert rt.engine is not None
    async with rt.engine.begin() as conn:
        await outbox.write(conn, records)
