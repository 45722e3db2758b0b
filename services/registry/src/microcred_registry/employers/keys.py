"""Employers' API keys in the registry: the projection of notify's key digests, and the
check of a bearer `mce_<key id>.<secret>` against it. A key works while it is not revoked
and its employer is approved in the registry's copy of the directory: a suspension (which
publishes both) takes effect on whichever arrives first."""

from __future__ import annotations

import hashlib
import hmac
import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry.employers.domain import SHAREABLE
from microcred_registry.employers.models import EmployerEntry, EmployerKey
from microcred_shared.consumer import Incoming
from microcred_shared.contract.events_employers import EmployerApiKeyChanged
from microcred_shared.db import table_of

PREFIX = "mce_"


async def on_employer_keys(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    table = table_of(EmployerKey)
    for item in items:
        e = item.event
        assert isinstance(e, EmployerApiKeyChanged)
        values = {"key_id": e.key_id, "employer_id": e.employer_id,
                  "secret_sha256": e.secret_sha256, "created_at": e.created_at,
                  "revoked_at": e.revoked_at}
        # A revocation is final: a replayed "minted" record never brings a key back.
        await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
            index_elements=[table.c.key_id],
            set_={"revoked_at": sa.func.coalesce(table.c.revoked_at, e.revoked_at)}))
    return {}


class EmployerKeys:
    """Bearer key -> approved employer id, cached briefly (a suspension takes effect within
    `ttl` seconds of reaching the registry)."""

    def __init__(self, engine: AsyncEngine, ttl: float = 5.0) -> None:
        self._engine, self._ttl = engine, ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def employer_for(self, token: str) -> str | None:
        if not token.startswith(PREFIX) or "." not in token:
            return None
        key_id, _, secret = token[len(PREFIX):].partition(".")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(
                col(EmployerKey.employer_id), col(EmployerKey.secret_sha256)).join(
                EmployerEntry, col(EmployerEntry.employer_id) == col(EmployerKey.employer_id),
            ).where(col(EmployerKey.key_id) == key_id, col(EmployerKey.revoked_at).is_(None),
                    col(EmployerEntry.status) == SHAREABLE))).first()
        found = row.employer_id if row and hmac.compare_digest(
            row.secret_sha256, digest) else None
        self._cache[digest] = (time.monotonic() + self._ttl, found)
        return found
