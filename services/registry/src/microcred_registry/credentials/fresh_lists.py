"""A status list that is on its way: issuance publishes a provider's next list through the
outbox and Kafka in the transaction that issues the first credential pointing into it, and
answers the VC-API caller at once; the list reaches this projection 0.1-0.3 s later. A
verifier asking in between must not be told "unknown" or 404.

So a miss on a list that can be about to arrive (its provider is known, and it is list 0
or the one after a list we have) waits, briefly and boundedly, for the projection instead
of failing; any other miss answers at once (ADR 25). Nothing here talks to issuance: the
only path stays Kafka.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.credentials.domain import status_list_url
from microcred_registry.credentials.handlers import status_list

WAIT_SECONDS = 3.0  # far above the observed Kafka path (0.1-0.3 s), far below HTTP timeouts
POLL_SECONDS = 0.05
MAX_WAITERS = 64  # misses waiting at once; beyond that a miss answers at once (no pile-up)
_waiting = 0

_KNOWN_PROVIDER = sa.text("SELECT 1 FROM issuers WHERE provider_id = :p")


async def _may_arrive(engine: AsyncEngine, base: str, provider_id: str, purpose: str,
                      list_no: int) -> bool:
    async with engine.connect() as conn:
        if (await conn.execute(_KNOWN_PROVIDER, {"p": provider_id})).first() is None:
            return False
        if list_no == 0:
            return True
        previous = status_list_url(base, provider_id, purpose, list_no - 1)
        return list_no > 0 and await status_list(conn, previous) is not None


async def status_list_soon(engine: AsyncEngine, base: str, provider_id: str, purpose: str,
                           list_no: int, *, wait: float = WAIT_SECONDS,
                           ) -> tuple[dict[str, Any], int] | None:
    """The signed list and its version, waiting up to `wait` seconds for a list that can
    be about to arrive; None when there is none."""
    global _waiting
    url = status_list_url(base, provider_id, purpose, list_no)
    async with engine.connect() as conn:
        found = await status_list(conn, url)
    if found is not None or _waiting >= MAX_WAITERS or not await _may_arrive(
            engine, base, provider_id, purpose, list_no):
        return found
    _waiting += 1
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            async with engine.connect() as conn:
                found = await status_list(conn, url)
            if found is not None:
                return found
        return None
    finally:
        _waiting -= 1


def parse_status_path(path: str) -> tuple[str, str, int] | None:
    """(provider, purpose, list number) of `/status/{provider}/{purpose}/{n}`, else None."""
    parts = path.split("/")
    if len(parts) != 5 or parts[1] != "status" or not parts[4].isdigit():
        return None
    return parts[2], parts[3], int(parts[4])
