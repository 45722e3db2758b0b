"""Provider API keys for HTTP ingest: `mcp_<key id>.<secret>`, stored as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_assessment.models import ApiKey

PREFIX = "mcp_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(engine: AsyncEngine, provider_id: str) -> str:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(ApiKey).values(
            key_id=key_id, provider_id=provider_id, secret_sha256=_digest(secret)))
    return f"{PREFIX}{key_id}.{secret}"


async def revoke_key(engine: AsyncEngine, key_id: str) -> bool:
    async with engine.begin() as conn:
        done = await conn.execute(sa.update(ApiKey).where(
            ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)
        ).values(revoked_at=datetime.now(UTC)))
    return done.rowcount == 1


class KeyVerifier:
    """Checks bearer tokens. Verified keys are cached briefly so that ingest at thousands
    of requests per second does not hit the database per request; a revocation takes
    effect within `ttl` seconds."""

    def __init__(self, engine: AsyncEngine, ttl: float = 10.0) -> None:
        self._engine, self._ttl = engine, ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def provider_for(self, token: str) -> str | None:
        if not token.startswith(PREFIX) or "." not in token:
            return None
        key_id, _, secret = token[len(PREFIX):].partition(".")
        digest = _digest(secret)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(ApiKey.provider_id, ApiKey.secret_sha256).where(
                ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))).first()
        provider = row.provider_id if row and hmac.compare_digest(row.secret_sha256, digest) \
            else None
        self._cache[digest] = (time.monotonic() + self._ttl, provider)
        return provider
