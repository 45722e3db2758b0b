"""Status lists: each provider's revocation and suspension bitstrings, the index each
credential gets in them, and the signed list the registry serves."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_issuance.keys.domain import issuer_id
from microcred_issuance.keys.signing import Signer
from microcred_issuance.status.domain import PURPOSES, STATUS_LIST_SIZE, TTL, VALIDITY, list_url
from microcred_issuance.status.models import StatusAllocation, StatusList
from microcred_shared.contract import topics
from microcred_shared.contract.events import StatusListPublished
from microcred_shared.db import table_of
from microcred_shared.outbox import Outgoing, event_record
from microcred_shared.vc import statuslist

SOURCE = "/microcred/issuance"


async def allocate(conn: AsyncConnection, provider_id: str, count: int) -> int:
    """Reserve `count` consecutive status list indexes; returns the first.

    In a short transaction of its own, committed at once, like a sequence: the caller's
    transaction (a batch that signs for a while) never holds the provider's allocation row,
    so instances of issuance neither wait for each other's batches nor deadlock (two batches
    locking two providers in opposite orders: seen with two instances, issue 12). A batch
    that rolls back leaves its indexes unused, a gap no credential points into."""
    table = table_of(StatusAllocation)
    stmt = pg_insert(table).values(provider_id=provider_id, next_index=count)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.provider_id], set_={"next_index": table.c.next_index + count}
    ).returning(table.c.next_index)
    async with conn.engine.connect() as own:
        end = (await own.execute(upsert)).scalar_one()
        await own.commit()
    return int(end) - count


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


async def publish(conn: AsyncConnection, signer: Signer, *, provider_id: str, purpose: str,
                  list_no: int) -> Outgoing:
    """Sign the list as it is now and hand it to the registry through the outbox."""
    row = (await conn.execute(sa.select(col(StatusList.bits), col(StatusList.version)).where(
        col(StatusList.provider_id) == provider_id, col(StatusList.purpose) == purpose,
        col(StatusList.list_no) == list_no))).one()
    url = list_url(signer.base_url, provider_id, purpose, list_no)
    now = datetime.now(UTC)
    doc = statuslist.status_list_credential(
        url=url, issuer=issuer_id(signer.base_url, provider_id),
        purpose=purpose,  # type: ignore[arg-type]
        encoded_list=statuslist.encode_list(row.bits), valid_from=now,
        valid_until=now + VALIDITY, ttl_ms=int(TTL.total_seconds() * 1000))
    return event_record(topics.STATUS_LISTS, StatusListPublished(
        url=url, provider_id=provider_id, purpose=purpose, version=row.version,
        credential=signer.status_list(doc, provider_id), published_at=now),
        SOURCE, traceparent=None)


async def reserve(conn: AsyncConnection, signer: Signer, provider_id: str,
                  count: int) -> tuple[int, list[Outgoing]]:
    """Status list indexes for `count` new credentials of a provider (the first is
    returned) and the publication of any list made for them: publish it before, or with,
    the first credential pointing into it, or that credential would not verify."""
    first = await allocate(conn, provider_id, count)
    created = await ensure_lists(conn, provider_id,
                                 {i // STATUS_LIST_SIZE for i in (first, first + count - 1)})
    return first, [await publish(conn, signer, provider_id=provider_id, purpose=p, list_no=n)
                   for p, n in created]
