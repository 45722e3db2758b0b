"""Per-employer token buckets kept in PostgreSQL, so that every notify instance draws from
the same bucket (an in-memory bucket would multiply the limit by the replica count)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from microcred_notify.employer_feed.domain import take_tokens
from microcred_notify.employer_feed.models import RateBucket


@dataclass(frozen=True)
class Grant:
    granted: int
    retry_after: float


class RateLimiter:
    def __init__(self, engine: AsyncEngine, *, rate: float, burst: int) -> None:
        self._engine, self._rate, self._burst = engine, rate, burst

    async def take(self, employer_id: str, channel: str, wanted: int = 1) -> Grant:
        # Its own short transaction: a bucket row is never held locked while we send.
        async with self._engine.begin() as conn:
            await conn.execute(pg_insert(RateBucket).values(
                employer_id=employer_id, channel=channel, tokens=float(self._burst),
                updated_at=sa.func.clock_timestamp()).on_conflict_do_nothing())
            row = (await conn.execute(sa.select(
                col(RateBucket.tokens),
                sa.func.extract("epoch", sa.func.clock_timestamp() - col(RateBucket.updated_at))
                .label("elapsed"),
            ).where(col(RateBucket.employer_id) == employer_id, col(RateBucket.channel) == channel)
                .with_for_update())).one()
            granted, left, wait = take_tokens(row.tokens, float(row.elapsed), rate=self._rate,
                                              burst=self._burst, wanted=wanted)
            await conn.execute(sa.update(RateBucket).where(
                col(RateBucket.employer_id) == employer_id, col(RateBucket.channel) == channel,
            ).values(tokens=left, updated_at=sa.func.clock_timestamp()))
        return Grant(granted, wait if granted < wanted else 0.0)
