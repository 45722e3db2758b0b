"""Status lists: each provider's revocation and suspension bitstrings, the index each
credential gets in them, and the signed list the registry serves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_issuance.driver import outside_transaction
from microcred_issuance.keys.domain import issuer_id
from microcred_issuance.keys.signing import Signer
from microcred_issuance.status.domain import PURPOSES, STATUS_LIST_SIZE, TTL, VALIDITY, list_url
from microcred_issuance.status.models import StatusList
from microcred_shared.contract import topics
from microcred_shared.contract.events import StatusListPublished
from microcred_shared.db import table_of
from microcred_shared.outbox import Outgoing, event_record
from microcred_shared.vc import statuslist

SOURCE = "/microcred/issuance"


# Allocations for one or more issuers, and which of the lists their indexes fall into
# exist (committed), in one statement: a batch inserts only the lists that are missing. A
# batch used to send, per issuer, a BEGIN, the upsert and a COMMIT, then an INSERT ... ON
# CONFLICT DO NOTHING per purpose and list, each binding a whole empty list (16 KB), for
# lists that exist after a provider's first credential (issue 12). The rows are upserted in
# provider order: two batches allocating for the same providers lock them in the same order.
_ALLOCATE = (
    "WITH u AS (SELECT * FROM unnest(CAST($1 AS text[]), CAST($2 AS int[])) "
    "AS u(p, n)), "
    "a AS (INSERT INTO status_allocations (provider_id, next_index) "
    "SELECT p, n FROM u ORDER BY p ON CONFLICT (provider_id) DO UPDATE "
    "SET next_index = status_allocations.next_index + excluded.next_index "
    "RETURNING provider_id, next_index) "
    "SELECT a.provider_id, a.next_index - u.n AS first, s.purpose, s.list_no "
    "FROM a JOIN u ON u.p = a.provider_id LEFT JOIN status_lists s "
    "ON s.provider_id = a.provider_id AND s.list_no BETWEEN "
    "(a.next_index - u.n) / CAST($3 AS int) AND (a.next_index - 1) / CAST($3 AS int)")


@dataclass(frozen=True)
class Allocation:
    """Consecutive status list indexes of one issuer: the first, and the (purpose, list_no)
    of the lists they fall into that existed (committed) when they were allocated."""

    first: int
    existing: frozenset[tuple[str, int]]


async def allocate(conn: AsyncConnection, counts: dict[str, int]) -> dict[str, Allocation]:
    """Reserve `counts[provider]` consecutive status list indexes for each provider.

    In autocommit on a connection of its own, committed at once, like a sequence: the
    caller's transaction (a batch that signs for a while) never holds a provider's
    allocation row, so instances of issuance neither wait for each other's batches nor
    deadlock (two batches locking two providers in opposite orders: seen with two
    instances, issue 12). A batch that rolls back leaves its indexes unused, a gap no
    credential points into. The lists are read by the same statement, so only committed
    ones count as existing: one the caller's own transaction made is not taken for one."""
    pids = sorted(counts)
    async with conn.engine.connect() as own:
        # On the driver's connection, in no transaction: the statement commits on its own
        # (through SQLAlchemy in autocommit: ~300 µs of client CPU, here ~220; issue 12).
        rows = await (await outside_transaction(own)).fetch(
            _ALLOCATE, pids, [counts[p] for p in pids], STATUS_LIST_SIZE)
    first = {r["provider_id"]: int(r["first"]) for r in rows}
    existing: dict[str, set[tuple[str, int]]] = {p: set() for p in first}
    for r in rows:
        if r["purpose"] is not None:
            existing[r["provider_id"]].add((r["purpose"], r["list_no"]))
    return {p: Allocation(first[p], frozenset(existing[p])) for p in pids}


async def ensure_lists(conn: AsyncConnection, provider_id: str, list_nos: set[int], *,
                       existing: frozenset[tuple[str, int]] = frozenset(),
                       ) -> list[tuple[str, int]]:
    """Create missing lists (all bits clear); returns the (purpose, list_no) created.
    `existing`: lists known to be committed already (not inserted again)."""
    created = []
    table = table_of(StatusList)
    for list_no in sorted(list_nos):
        for purpose in PURPOSES:
            if (purpose, list_no) in existing:
                continue
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


async def reserve(conn: AsyncConnection, signer: Signer, provider_id: str, count: int,
                  allocated: Allocation | None = None) -> tuple[int, list[Outgoing]]:
    """Status list indexes for `count` new credentials of a provider (the first is
    returned; `allocated`: already allocated, by `allocate`) and the publication of any
    list made for them: publish it before, or with, the first credential pointing into it,
    or that credential would not verify."""
    got = allocated or (await allocate(conn, {provider_id: count}))[provider_id]
    first = got.first
    created = await ensure_lists(conn, provider_id,
                                 {i // STATUS_LIST_SIZE for i in (first, first + count - 1)},
                                 existing=got.existing)
    return first, [await publish(conn, signer, provider_id=provider_id, purpose=p, list_no=n)
                   for p, n in created]
