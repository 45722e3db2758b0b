"""issuance's side of onboarding: every provider in the catalogue gets a signing key, and
its public profile and keys are announced to the registry (which serves the controller
document) in the same transaction as the projection update."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance import credential
from microcred_issuance.keystore import KeyStore
from microcred_shared import projection, topics
from microcred_shared.consumer import Incoming
from microcred_shared.events import IssuerKeysPublished, IssuerPublicKey
from microcred_shared.events_providers import ProviderPublished
from microcred_shared.outbox import event_record

SOURCE = "/microcred/issuance"


async def on_providers(conn: AsyncConnection, items: list[Incoming], *, keys: KeyStore,
                       base_url: str) -> dict[int, str]:
    for item in items:
        event = item.event
        assert isinstance(event, ProviderPublished)
        if not await projection.put_provider(conn, event.provider):
            continue  # an older version than the one we hold
        # A suspended provider keeps its key and profile: past credentials stay verifiable.
        await keys.ensure_in(conn, event.provider.id)
        public = [IssuerPublicKey.model_validate(k)
                  for k in await keys.public_keys_in(conn, event.provider.id)]
        item.outgoing.append(event_record(topics.ISSUER_KEYS, IssuerKeysPublished(
            provider_id=event.provider.id,
            profile=credential.issuer_profile(event.provider, base_url), keys=public,
            published_at=datetime.now(UTC)), SOURCE, traceparent=item.traceparent))
    return {}
