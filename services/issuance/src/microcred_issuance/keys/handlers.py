"""Use cases of the issuer keys: every provider in the catalogue gets a signing key, its
public profile and keys are announced to the registry (which serves the controller
document), and an operator may rotate a key."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_issuance.keys.domain import SigningKey, issuer_profile
from microcred_issuance.keys.keystore import KeyStore
from microcred_shared import logs, outbox, projection
from microcred_shared.catalog import Catalog, Provider
from microcred_shared.consumer import Incoming
from microcred_shared.contract import topics
from microcred_shared.contract.events import IssuerKeysPublished, IssuerPublicKey
from microcred_shared.contract.events_providers import ProviderPublished
from microcred_shared.outbox import Outgoing, event_record

SOURCE = "/microcred/issuance"
log = logging.getLogger(__name__)


class UnknownProvider(LookupError):
    pass


async def announcement(conn: AsyncConnection, keys: KeyStore, provider: Provider,
                       base_url: str, traceparent: str | None = None) -> Outgoing:
    """The provider's profile and every key it ever had (retired and compromised ones
    included: verifiers must know their status). Compacted topic: repeating is harmless."""
    public = [IssuerPublicKey.model_validate(k)
              for k in await keys.public_keys_in(conn, provider.id)]
    return event_record(topics.ISSUER_KEYS, IssuerKeysPublished(
        provider_id=provider.id, profile=issuer_profile(provider, base_url), keys=public,
        published_at=datetime.now(UTC)), SOURCE, traceparent=traceparent)


async def on_providers(conn: AsyncConnection, items: list[Incoming], *, keys: KeyStore,
                       base_url: str) -> dict[int, str]:
    """Project the provider in the same transaction as its key and announcement."""
    for item in items:
        event = item.event
        assert isinstance(event, ProviderPublished)
        if not await projection.put_provider(conn, event.provider):
            continue  # an older version than the one we hold
        # A suspended provider keeps its key and profile: past credentials stay verifiable.
        await keys.ensure_in(conn, event.provider.id)
        item.outgoing.append(await announcement(conn, keys, event.provider, base_url,
                                                item.traceparent))
    return {}


async def publish_keys(engine: AsyncEngine, keys: KeyStore, providers: list[Provider],
                       base_url: str) -> None:
    """Announce these providers' keys (at start, and after a rotation)."""
    async with engine.begin() as conn:
        await outbox.write(conn, [await announcement(conn, keys, p, base_url)
                                  for p in providers])


@dataclass(frozen=True)
class Rotated:
    provider_id: str
    key: SigningKey
    compromised: bool


async def rotate(engine: AsyncEngine, keys: KeyStore, catalog: Catalog, provider_id: str, *,
                 compromised: bool, base_url: str) -> Rotated:
    """A new key signs from now on; the registry learns the old one's fate at once."""
    provider = catalog.provider(provider_id)
    if provider is None:
        raise UnknownProvider(provider_id)
    key = await keys.rotate(provider_id, compromised=compromised)
    await publish_keys(engine, keys, [provider], base_url)
    return Rotated(provider_id, key, compromised)


async def follow_rotations(keys: KeyStore, every: float = 5.0) -> None:
    """With several issuance instances, a rotation done by one reaches the others within
    `every` seconds (the rotating instance switches at once)."""
    while True:
        await asyncio.sleep(every)
        try:
            await keys.refresh()
        except Exception as exc:
            logs.failure(log, "could not reload issuer keys", exc)
