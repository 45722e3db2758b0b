"""The pull feed: an employer's events in one stable total order, cursor-paginated.

Order is (txid, id): the id of the writing transaction, then the row id. A reader only sees
rows whose transaction is older than the oldest transaction still running
(`pg_snapshot_xmin`). Any transaction that commits later has a txid at least that large, so
its rows sort after everything already returned: a cursor never skips a row that commits
late with a smaller id (the gap a plain bigserial cursor has), and never returns one twice.
The price: a feed lags behind writes by the longest transaction running on the server."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_notify.employer_feed.domain import SHARED, decode_cursor, encode_cursor
from microcred_notify.employer_feed.ratelimit import RateLimiter
from microcred_shared.problems import Problem

PAGE = sa.text("""
SELECT e.id, e.txid, e.body, e.type, x.visible
FROM employer_events e
LEFT JOIN employer_exposures x
  ON x.employer_id = e.employer_id AND x.credential_id = e.credential_id
WHERE e.employer_id = :employer AND (e.txid, e.id) > (:txid, :id)
  AND e.txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY e.txid, e.id
LIMIT :limit
""")


def entry(row: Any) -> dict[str, Any]:
    body = dict(row.body)
    if row.type == SHARED and not row.visible:
        # Unshared since: re-reading the feed must not hand the document out again.
        body["data"] = {k: v for k, v in body["data"].items() if k != "credential"}
        body["redacted"] = True
    return {"cursor": encode_cursor(row.txid, row.id), **body}


async def page(engine: AsyncEngine, employer_id: str, cursor: str | None,
               limit: int) -> dict[str, Any]:
    try:
        txid, row_id = decode_cursor(cursor)
    except ValueError as exc:
        raise Problem(400, "Invalid cursor", str(exc), kind="invalid-cursor") from exc
    async with engine.begin() as conn:
        rows = (await conn.execute(PAGE, {"employer": employer_id, "txid": txid, "id": row_id,
                                          "limit": limit + 1})).all()
        shown = rows[:limit]
        if shown:
            # The audit: when each entry first reached the employer.
            await conn.execute(sa.text(
                "UPDATE employer_events SET first_fetched_at = :now "
                "WHERE id = ANY(:ids) AND first_fetched_at IS NULL"),
                {"now": datetime.now(UTC), "ids": [r.id for r in shown]})
    next_cursor = encode_cursor(shown[-1].txid, shown[-1].id) if shown else (
        cursor or encode_cursor(0, 0))
    return {"entries": [entry(r) for r in shown], "next_cursor": next_cursor,
            "has_more": len(rows) > limit}


async def read(engine: AsyncEngine, limiter: RateLimiter, employer_id: str, cursor: str | None,
               limit: int) -> dict[str, Any]:
    """One page of the employer's feed, within its feed rate limit."""
    grant = await limiter.take(employer_id, "feed")
    if not grant.granted:
        raise Problem(429, "Too many requests", "this employer's feed rate limit is "
                      "exhausted; retry after the given delay", kind="rate-limited",
                      headers={"Retry-After": str(max(1, math.ceil(grant.retry_after)))})
    return await page(engine, employer_id, cursor, limit)
