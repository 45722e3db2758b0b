"""Every provider gets a signing key on arrival, kept encrypted at rest; its profile and
public keys are announced to the registry; an operator's rotation takes effect at once."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from microcred_issuance.keys.handlers import UnknownProvider, on_providers, rotate
from microcred_issuance.keys.keystore import KeyStore
from microcred_shared.contract import topics
from microcred_shared.contract.events import IssuerKeysPublished
from microcred_shared.contract.events_providers import ProviderPublished

LAKESHORE = "lakeshore-college"


def arrival(world, provider_id: str = "north-shore-polytechnic", *, version: int = 1,
            **changes) -> ProviderPublished:
    base = world.seed.provider(LAKESHORE)
    provider = base.model_copy(update={"id": provider_id, "version": version, **changes})
    return ProviderPublished(provider=provider, published_at=datetime.now(UTC))


async def onboard(world, *events: ProviderPublished) -> None:
    await world.deliver(topics.PROVIDERS, list(events),
                        partial(on_providers, keys=world.keys, base_url=world.base_url),
                        ProviderPublished)


async def announced(world) -> list[IssuerKeysPublished]:
    out = [p.event for p in await world.published(topics.ISSUER_KEYS)]
    assert all(isinstance(e, IssuerKeysPublished) for e in out)
    return out


async def test_a_new_provider_gets_a_key_and_its_profile_and_key_are_announced(world):
    await onboard(world, arrival(world))
    [event] = await announced(world)
    assert event.provider_id == "north-shore-polytechnic"
    assert event.profile["id"] == (
        "did:web:registry.microcred.example:issuers:north-shore-polytechnic")
    assert [k.status for k in event.keys] == ["active"]
    await world.keys.ensure_loaded("north-shore-polytechnic")
    key = world.keys.active("north-shore-polytechnic")
    assert event.keys[0].public_multikey == key.public_multikey


async def test_a_provider_published_again_keeps_its_key_and_an_older_version_is_ignored(
        world):
    await onboard(world, arrival(world, version=2))
    await onboard(world, arrival(world, version=3, status="suspended"))
    await onboard(world, arrival(world, version=1))  # out of order: older than ours
    events = await announced(world)
    assert len(events) == 2
    assert events[0].keys == events[1].keys  # a suspended provider keeps its key
    assert await world.scalar("SELECT count(*) FROM issuer_keys "
                              "WHERE provider_id = 'north-shore-polytechnic'") == 1


async def test_private_keys_are_stored_encrypted_and_bound_to_their_row(world):
    key = world.keys.active(LAKESHORE)
    seed = key.private.private_bytes_raw()
    rows = await world.rows("SELECT provider_id, private_encrypted FROM issuer_keys")
    assert all(seed not in bytes(r.private_encrypted) for r in rows)
    # Another key-encryption key reads nothing.
    with pytest.raises(InvalidTag):
        await KeyStore(world.engine, b"\x01" * 32).refresh()
    # A ciphertext moved to another provider's row does not decrypt.
    async with world.engine.begin() as conn:
        await conn.execute(sa.text(
            "UPDATE issuer_keys SET private_encrypted = (SELECT private_encrypted FROM "
            "issuer_keys WHERE provider_id = :a), nonce = (SELECT nonce FROM issuer_keys "
            "WHERE provider_id = :a) WHERE provider_id = :b"),
            {"a": LAKESHORE, "b": "coast-mountain-university"})
    with pytest.raises(InvalidTag):
        await KeyStore(world.engine, world.kek).refresh()


async def test_a_rotation_signs_with_the_new_key_at_once_and_announces_the_old_ones_fate(
        world):
    before = world.keys.active(LAKESHORE)
    rotated = await rotate(world.engine, world.keys, world.live.current, LAKESHORE,
                           compromised=True, base_url=world.base_url)
    assert rotated.key.key_id != before.key_id
    assert world.keys.active(LAKESHORE) == rotated.key
    [event] = await announced(world)
    assert {k.key_id: k.status for k in event.keys} == {before.key_id: "compromised",
                                                        rotated.key.key_id: "active"}
    # Another instance learns of it when it reloads its keys.
    other = KeyStore(world.engine, world.kek)
    await other.refresh()
    assert other.active(LAKESHORE).key_id == rotated.key.key_id


async def test_a_rotation_for_an_unknown_provider_changes_nothing(world):
    with pytest.raises(UnknownProvider):
        await rotate(world.engine, world.keys, world.live.current, "nobody-here",
                     compromised=False, base_url=world.base_url)
    assert await announced(world) == []
    assert await world.scalar("SELECT count(*) FROM issuer_keys WHERE status <> 'active'") == 0
