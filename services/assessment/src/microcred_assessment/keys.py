"""Minting and revoking provider API keys (assessment is where keys are issued)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_shared import outbox, topics
from microcred_shared.auth import ApiKey, new_key, upsert
from microcred_shared.events import ProviderApiKeyChanged

SOURCE = "/microcred/assessment"


async def create_key(engine: AsyncEngine, provider_id: str) -> str:
    """Store the digest, announce it to the other services, return the key (shown once)."""
    token, event = new_key(provider_id)
    async with engine.begin() as conn:
        await upsert(conn, [event])
        await outbox.write(conn, [outbox.event_record(topics.PROVIDER_API_KEYS, event, SOURCE,
                                                      traceparent=None)])
    return token


async def revoke_key(engine: AsyncEngine, key_id: str) -> bool:
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(ApiKey).where(
            ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))).first()
        if row is None:
            return False
        event = ProviderApiKeyChanged(key_id=row.key_id, provider_id=row.provider_id,
                                      secret_sha256=row.secret_sha256,
                                      created_at=row.created_at, revoked_at=datetime.now(UTC))
        await upsert(conn, [event])
        await outbox.write(conn, [outbox.event_record(topics.PROVIDER_API_KEYS, event, SOURCE,
                                                      traceparent=None)])
    return True
