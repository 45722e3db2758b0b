"""Minting, rotating and revoking provider API keys (assessment is where keys are issued).

A key is shown once, when minted; only its SHA-256 digest is stored and announced to the
other services on the compacted api-keys topic (ADR 5). Rotation mints the new key and
revokes the old one in one transaction: there is no overlap, so a leaked key is dead the
moment the operator rotates it (the caller deploys the new key first if it needs none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_shared import outbox
from microcred_shared.auth import ApiKey, new_key, upsert
from microcred_shared.contract import topics
from microcred_shared.contract.events import ProviderApiKeyChanged

SOURCE = "/microcred/assessment"


async def mint(conn: AsyncConnection, provider_id: str) -> tuple[str, str]:
    """(key, key id): store the digest and announce it to the other services."""
    token, event = new_key(provider_id)
    await upsert(conn, [event])
    await outbox.write(conn, [outbox.event_record(topics.PROVIDER_API_KEYS, event, SOURCE,
                                                  traceparent=None)])
    return token, event.key_id


async def revoke(conn: AsyncConnection, key_id: str, provider_id: str | None = None,
                 ) -> bool:
    query = sa.select(ApiKey).where(col(ApiKey.key_id) == key_id,
                                    col(ApiKey.revoked_at).is_(None))
    if provider_id is not None:
        query = query.where(col(ApiKey.provider_id) == provider_id)
    row = (await conn.execute(query.with_for_update())).first()
    if row is None:
        return False
    event = ProviderApiKeyChanged(key_id=row.key_id, provider_id=row.provider_id,
                                  secret_sha256=row.secret_sha256,
                                  created_at=row.created_at, revoked_at=datetime.now(UTC))
    await upsert(conn, [event])
    await outbox.write(conn, [outbox.event_record(topics.PROVIDER_API_KEYS, event, SOURCE,
                                                  traceparent=None)])
    return True


async def listing(conn: AsyncConnection, provider_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(sa.select(col(ApiKey.key_id), col(ApiKey.created_at),
                                         col(ApiKey.revoked_at))
                               .where(col(ApiKey.provider_id) == provider_id)
                               .order_by(col(ApiKey.created_at)))).all()
    return [{"key_id": r.key_id, "created_at": r.created_at.isoformat(),
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]


async def create_key(engine: AsyncEngine, provider_id: str) -> str:
    async with engine.begin() as conn:
        token, _ = await mint(conn, provider_id)
    return token


async def revoke_key(engine: AsyncEngine, key_id: str) -> bool:
    async with engine.begin() as conn:
        return await revoke(conn, key_id)
