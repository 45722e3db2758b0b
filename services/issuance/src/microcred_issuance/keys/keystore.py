"""Issuer keys: generated per provider, encrypted at rest, decrypted only in memory."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_issuance.keys.domain import SigningKey, key_binding, multikey, new_key_id
from microcred_issuance.keys.models import IssuerKey

# Held while a provider's first key is made, so two instances never both make one.
_KEY_LOCK = "SELECT pg_advisory_xact_lock(7700201)"


class KeyStore:
    def __init__(self, engine: AsyncEngine, kek: bytes) -> None:
        self._engine = engine
        self._aead = AESGCM(kek)
        self._active: dict[str, SigningKey] = {}

    def _decrypt(self, row: IssuerKey | sa.Row) -> SigningKey:
        seed = self._aead.decrypt(row.nonce, row.private_encrypted,
                                  key_binding(row.provider_id, row.key_id))
        private = Ed25519PrivateKey.from_private_bytes(seed)
        return SigningKey(row.provider_id, row.key_id, private, row.public_multikey)

    async def _insert(self, conn: AsyncConnection, provider_id: str) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes(serialization.Encoding.Raw,
                                     serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        key_id = new_key_id(datetime.now(UTC))
        nonce = os.urandom(12)
        await conn.execute(sa.insert(IssuerKey).values(
            provider_id=provider_id, key_id=key_id, public_multikey=multikey(private),
            private_encrypted=self._aead.encrypt(nonce, seed, key_binding(provider_id, key_id)),
            nonce=nonce, status="active"))
        return SigningKey(provider_id, key_id, private, multikey(private))

    async def refresh(self) -> None:
        """Reload the active keys: another instance may have rotated one."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(IssuerKey).where(
                col(IssuerKey.status) == "active"))).all()
        for row in rows:
            current = self._active.get(row.provider_id)
            if current is None or current.key_id != row.key_id:
                self._active[row.provider_id] = self._decrypt(row)

    async def ensure_active(self, provider_ids: list[str]) -> list[str]:
        """Make sure each provider has an active key; returns providers that got a new one."""
        created = []
        async with self._engine.begin() as conn:
            await conn.execute(sa.text(_KEY_LOCK))
            rows = (await conn.execute(sa.select(IssuerKey).where(
                col(IssuerKey.status) == "active"))).all()
            for row in rows:
                self._active[row.provider_id] = self._decrypt(row)
            for provider_id in provider_ids:
                if provider_id not in self._active:
                    self._active[provider_id] = await self._insert(conn, provider_id)
                    created.append(provider_id)
        return created

    async def rotate(self, provider_id: str, *, compromised: bool = False) -> SigningKey:
        """A new key signs from now on. The old one is `retired` (credentials it signed
        keep verifying) or `compromised` (verifiers must stop trusting it)."""
        async with self._engine.begin() as conn:
            await conn.execute(sa.update(IssuerKey).where(
                col(IssuerKey.provider_id) == provider_id, col(IssuerKey.status) == "active",
            ).values(status="compromised" if compromised else "retired",
                     retired_at=datetime.now(UTC)))
            key = await self._insert(conn, provider_id)
        self._active[provider_id] = key
        return key

    def active(self, provider_id: str) -> SigningKey:
        return self._active[provider_id]

    def providers(self) -> list[str]:
        return sorted(self._active)

    async def ensure_loaded(self, provider_id: str) -> None:
        """A provider onboarded after this process started: its key row was committed by
        the providers consumer (maybe in another instance); load it before signing."""
        if provider_id not in self._active:
            await self.refresh()
        if provider_id not in self._active:
            raise ConnectionError(f"no active issuer key for {provider_id} yet")  # retried

    async def ensure_in(self, conn: AsyncConnection, provider_id: str) -> bool:
        """Give a new provider its first key, in the caller's transaction (the key is
        loaded into memory once committed, see ensure_loaded). True when one was made."""
        await conn.execute(sa.text(_KEY_LOCK))
        found = (await conn.execute(sa.select(col(IssuerKey.key_id)).where(
            col(IssuerKey.provider_id) == provider_id, col(IssuerKey.status) == "active"))).first()
        if found:
            return False
        await self._insert(conn, provider_id)
        return True

    async def public_keys_in(self, conn: AsyncConnection, provider_id: str,
                             ) -> list[dict[str, str | None]]:
        rows = (await conn.execute(sa.select(
            col(IssuerKey.key_id), col(IssuerKey.public_multikey), col(IssuerKey.status),
            col(IssuerKey.created_at), col(IssuerKey.retired_at),
        ).where(col(IssuerKey.provider_id) == provider_id)
         .order_by(col(IssuerKey.created_at)))).all()
        return [{"key_id": r.key_id, "public_multikey": r.public_multikey, "status": r.status,
                 "created_at": r.created_at.isoformat(),
                 "retired_at": r.retired_at.isoformat() if r.retired_at else None}
                for r in rows]

    async def public_keys(self, provider_id: str) -> list[dict[str, str | None]]:
        async with self._engine.connect() as conn:
            return await self.public_keys_in(conn, provider_id)
