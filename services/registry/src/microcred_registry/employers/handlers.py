"""Use cases of the employer directory: keep the registry's copy of it from
`microcred.employers.v1` (newest record wins), and read it to name employers and to list
those a learner may share with."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_registry.employers.domain import SHAREABLE, newest
from microcred_registry.employers.models import EmployerEntry
from microcred_shared.consumer import Incoming
from microcred_shared.contract.events_employers import EmployerPublished
from microcred_shared.db import table_of


async def on_employer_published(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    events = []
    for item in items:
        assert isinstance(item.event, EmployerPublished)
        events.append(item.event)
    table = table_of(EmployerEntry)
    for e in newest(events):
        values = {"employer_id": e.employer_id, "organisation": e.organisation,
                  "status": e.status, "website": e.website, "updated_at": e.published_at}
        # A compacted topic is re-read from its start by a new consumer group: an older
        # record never overrides a newer one.
        await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
            index_elements=[table.c.employer_id],
            set_={k: v for k, v in values.items() if k != "employer_id"},
            where=table.c.updated_at <= e.published_at))
    return {}


async def entries(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, sa.Row]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = (await conn.execute(sa.select(EmployerEntry).where(
        col(EmployerEntry.employer_id).in_(wanted)))).all()
    return {r.employer_id: r for r in rows}


async def entry(conn: AsyncConnection, employer_id: str) -> sa.Row | None:
    return (await entries(conn, [employer_id])).get(employer_id)


async def shareable_employers(conn: AsyncConnection) -> list[sa.Row]:
    """Every employer a learner may share with now, by name."""
    return list((await conn.execute(sa.select(EmployerEntry).where(
        col(EmployerEntry.status) == SHAREABLE).order_by(
        sa.func.lower(EmployerEntry.organisation), EmployerEntry.employer_id))).all())


async def employer_name(conn: AsyncConnection, employer_id: str) -> str:
    """The name to tell the learner (the id while the directory does not know it)."""
    found = await entry(conn, employer_id)
    return found.organisation if found else employer_id
