"""Status lists: each provider's revocation and suspension bitstrings, signed by its key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_issuance.credential import STATUS_LIST_SIZE, issuer_id
from microcred_issuance.models import StatusList
from microcred_shared import topics
from microcred_shared.db import table_of
from microcred_shared.events import StatusListPublished
from microcred_shared.outbox import Outgoing, event_record
from microcred_shared.vc import statuslist

SOURCE = "/microcred/issuance"
PURPOSES = ("revocation", "suspension")
TTL = timedelta(minutes=5)
# Lists are re-signed on every change; this bounds how stale a cached copy may be trusted.
VALIDITY = timedelta(days=30)


def list_url(base_url: str, provider_id: str, purpose: str, list_no: int) -> str:
    return f"{base_url}/status/{provider_id}/{purpose}/{list_no}"


async def ensure_lists(conn: AsyncConnection, provider_id: str, list_nos: set[int]) -> list[
        tuple[str, int]]:
    """Create missing lists (all bits clear); returns the (purpose, list_no) created."""
    created = []
    table = table_of(StatusList)
    for list_no in sorted(list_nos):
        for purpose in PURPOSES:
            stmt = pg_insert(table).values(
                provider_id=provider_id, purpose=purpose, list_no=list_no,
                bits=bytes(statuslist.new_list(STATUS_LIST_SIZE)), version=0,
            ).on_conflict_do_nothing().returning(table.c.list_no)
            if (await conn.execute(stmt)).first():
                created.append((purpose, list_no))
    return created


async def set_bit(conn: AsyncConnection, provider_id: str, purpose: str, index: int,
                  value: bool) -> int:
    """Flip one bit under a row lock; returns the list's new version."""
    list_no, offset = divmod(index, STATUS_LIST_SIZE)
    await ensure_lists(conn, provider_id, {list_no})
    row = (await conn.execute(sa.select(col(StatusList.bits), col(StatusList.version)).where(
        col(StatusList.provider_id) == provider_id, col(StatusList.purpose) == purpose,
        col(StatusList.list_no) == list_no).with_for_update())).one()
    bits = bytearray(row.bits)
    statuslist.set_bit(bits, offset, value)
    await conn.execute(sa.update(StatusList).where(
        col(StatusList.provider_id) == provider_id, col(StatusList.purpose) == purpose,
        col(StatusList.list_no) == list_no,
    ).values(bits=bytes(bits), version=row.version + 1, updated_at=datetime.now(UTC)))
    return row.version + 1


async def publish(conn: AsyncConnection, *, provider_id: str, purpose: str, list_no: int,
                  base_url: str, sign: Any) -> Outgoing:
    """Sign the list as it is now and hand it to the registry through the outbox."""
    row = (await conn.execute(sa.select(col(StatusList.bits), col(StatusList.version)).where(
        col(StatusList.provider_id) == provider_id, col(StatusList.purpose) == purpose,
        col(StatusList.list_no) == list_no))).one()
    url = list_url(base_url, provider_id, purpose, list_no)
    now = datetime.now(UTC)
    doc = statuslist.status_list_credential(
        url=url, issuer=issuer_id(base_url, provider_id), purpose=purpose,  # type: ignore[arg-type]
        encoded_list=statuslist.encode_list(row.bits), valid_from=now,
        valid_until=now + VALIDITY, ttl_ms=int(TTL.total_seconds() * 1000))
    signed = sign(doc, provider_id)
    return event_record(topics.STATUS_LISTS, StatusListPublished(
        url=url, provider_id=provider_id, purpose=purpose,
        version=row.version, credential=signed, published_at=now), SOURCE, traceparent=None)
