"""Provider API keys, shared by every service that authenticates providers.

assessment mints keys and publishes each key's digest on a compacted topic; issuance and
registry keep their own projection of it (no service reads another's database). A key is
`mcp_<key id>.<secret>` with a 256-bit secret; only `sha256(secret)` is ever stored or
published (ADR 5).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi import Request
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel, col

from microcred_shared.consumer import Incoming
from microcred_shared.contract.events import ProviderApiKeyChanged
from microcred_shared.db import table_of, utcnow
from microcred_shared.problems import Problem

PREFIX = "mcp_"
# Verdicts KeyVerifier keeps at most: a caller trying many made-up keys cannot grow it.
MAX_CACHED = 10_000


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    key_id: str = Field(primary_key=True)
    provider_id: str = Field(index=True)
    secret_sha256: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(provider_id: str) -> tuple[str, ProviderApiKeyChanged]:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    event = ProviderApiKeyChanged(key_id=key_id, provider_id=provider_id,
                                  secret_sha256=digest(secret), created_at=datetime.now(UTC))
    return f"{PREFIX}{key_id}.{secret}", event


async def upsert(conn: AsyncConnection, events: list[ProviderApiKeyChanged]) -> None:
    table = table_of(ApiKey)
    for e in events:
        values = {"key_id": e.key_id, "provider_id": e.provider_id,
                  "secret_sha256": e.secret_sha256, "created_at": e.created_at,
                  "revoked_at": e.revoked_at}
        await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
            index_elements=[table.c.key_id], set_={"revoked_at": e.revoked_at}))


async def on_api_keys(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    await upsert(conn, [i.event for i in items if isinstance(i.event, ProviderApiKeyChanged)])
    return {}


class KeyVerifier:
    """Checks bearer tokens against this service's projection. Verified keys are cached
    briefly so that ingest at thousands of requests per second does not query per request;
    a revocation takes effect within `ttl` seconds. Single flight: the requests that miss
    the cache for one key at once (its first use, each expiry) wait for one lookup."""

    def __init__(self, engine: AsyncEngine, ttl: float = 10.0) -> None:
        self._engine, self._ttl = engine, ttl
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._lookups: dict[tuple[str, str], asyncio.Task[str | None]] = {}
        self._generation = 0

    def forget(self) -> None:
        """Drop cached verdicts (this process just revoked a key); a lookup in flight
        neither answers later callers nor fills the cache (it may predate the change)."""
        self._cache.clear()
        self._lookups.clear()
        self._generation += 1

    async def provider_for(self, token: str) -> str | None:
        if not token.startswith(PREFIX) or "." not in token:
            return None
        key_id, _, secret = token[len(PREFIX):].partition(".")
        key = (key_id, digest(secret))
        cached = self._cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        lookup = self._lookups.get(key)
        if lookup is None:
            # A task of its own: a caller that goes away (its client hung up) does not
            # cancel the lookup the others wait for.
            lookup = self._lookups[key] = asyncio.ensure_future(
                self._lookup(key, self._generation))
            # retrieved even when every waiter went away before it failed
            lookup.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(lookup)

    async def _lookup(self, key: tuple[str, str], generation: int) -> str | None:
        key_id, secret_digest = key
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(
                    sa.select(col(ApiKey.provider_id), col(ApiKey.secret_sha256)).where(
                        col(ApiKey.key_id) == key_id,
                        col(ApiKey.revoked_at).is_(None)))).first()
            provider = row.provider_id if row and hmac.compare_digest(
                row.secret_sha256, secret_digest) else None
            if generation == self._generation:
                now = time.monotonic()
                if len(self._cache) >= MAX_CACHED:  # refused tokens are cached too
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                    if len(self._cache) >= MAX_CACHED:
                        self._cache.clear()
                self._cache[key] = (now + self._ttl, provider)
            return provider
        finally:  # answered or failed (every waiter gets the error), the next miss asks anew
            if generation == self._generation:
                self._lookups.pop(key, None)


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if there is one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def require_provider(request: Request, verifier: KeyVerifier) -> str:
    """The provider id a valid API key authenticates; a 401 problem otherwise."""
    token = bearer(request)
    found = await verifier.provider_for(token) if token else None
    if not found:
        raise Problem(401, "Unauthorized", "a valid provider API key is required "
                      "(Authorization: Bearer mcp_...)", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    return found


def require_operator(request: Request, expected: SecretStr | str | None) -> None:
    """Admits only the operator token (read from the running service's settings, so a
    module-level router can use it); none configured, nobody passes. 401 problem otherwise."""
    if isinstance(expected, SecretStr):
        expected = expected.get_secret_value()
    given = bearer(request)
    if not (expected and given and hmac.compare_digest(given.encode(), expected.encode())):
        raise Problem(401, "Unauthorized", "an operator token is required",
                      kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})
