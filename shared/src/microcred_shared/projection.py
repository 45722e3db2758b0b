"""A service's own projection of providers and definitions, fed by the compacted topics.

The rows live in the service's database (written in the consumer's transaction, so the
inbox dedupe covers them); each process holds the whole catalogue in memory as an immutable
`Catalog` and swaps it after a change. Several instances of a service share the rows but
only one of them consumes each record, so every instance also reloads when the rows change
(a cheap fingerprint query every `poll` seconds), and at once after its own commits.

Every definition version ever seen is kept: a credential is built under the version its
decision names, which may be older (or, for a moment, newer) than the latest one here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel, col

from microcred_shared import logs
from microcred_shared.catalog import Catalog, Definition, Provider
from microcred_shared.consumer import Incoming
from microcred_shared.contract.events_providers import DefinitionPublished, ProviderPublished
from microcred_shared.db import table_of, utcnow

log = logging.getLogger(__name__)


class CatalogProvider(SQLModel, table=True):
    __tablename__ = "catalog_providers"
    id: str = Field(primary_key=True)
    version: int
    doc: dict[str, Any] = Field(sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class CatalogDefinition(SQLModel, table=True):
    __tablename__ = "catalog_definitions"
    id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    provider_id: str = Field(index=True)
    doc: dict[str, Any] = Field(sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


TABLES: list[sa.Table] = [table_of(CatalogProvider), table_of(CatalogDefinition)]


async def put_provider(conn: AsyncConnection, provider: Provider) -> bool:
    """Store a provider unless a newer version is already here (a replay of the topic, or
    two records out of order). True when stored."""
    table = table_of(CatalogProvider)
    values = {"id": provider.id, "version": provider.version,
              "doc": provider.model_dump(mode="json"), "updated_at": utcnow()}
    stmt = pg_insert(table).values(values)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.id], set_={k: stmt.excluded[k] for k in values if k != "id"},
        where=table.c.version <= stmt.excluded.version).returning(table.c.id)
    return (await conn.execute(upsert)).first() is not None


async def put_definition(conn: AsyncConnection, definition: Definition) -> None:
    table = table_of(CatalogDefinition)
    values = {"id": definition.id, "version": definition.version,
              "provider_id": definition.provider_id,
              "doc": definition.model_dump(mode="json"), "updated_at": utcnow()}
    stmt = pg_insert(table).values(values)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=[table.c.id, table.c.version],
        set_={"doc": stmt.excluded.doc, "updated_at": stmt.excluded.updated_at}))


async def on_providers(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    for item in items:
        assert isinstance(item.event, ProviderPublished)
        await put_provider(conn, item.event.provider)
    return {}


async def on_definitions(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    for item in items:
        assert isinstance(item.event, DefinitionPublished)
        await put_definition(conn, item.event.definition)
    return {}


class LiveCatalog:
    """The catalogue as this process knows it now; `current` is replaced, never mutated."""

    def __init__(self, engine: AsyncEngine, poll: float = 2.0) -> None:
        self._engine, self._poll = engine, poll
        self.current = Catalog.of([], [])
        self._versions: dict[tuple[str, int], Definition] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        self._poke = asyncio.Event()

    def poke(self) -> None:
        """Reload soon (a commit of ours may have changed the rows)."""
        self._poke.set()

    async def refresh(self, *, force: bool = False) -> bool:
        async with self._engine.connect() as conn:
            fingerprint = tuple((await conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM catalog_providers),"
                " (SELECT max(updated_at) FROM catalog_providers),"
                " (SELECT count(*) FROM catalog_definitions),"
                " (SELECT max(updated_at) FROM catalog_definitions)"))).one())
            if fingerprint == self._fingerprint and not force:
                return False
            providers = (await conn.execute(sa.select(col(CatalogProvider.doc)))).scalars().all()
            rows = (await conn.execute(sa.select(col(CatalogDefinition.doc)).order_by(
                col(CatalogDefinition.id), col(CatalogDefinition.version)))).scalars().all()
        versions = {}
        for doc in rows:
            d = Definition.model_validate(doc)
            versions[(d.id, d.version)] = d
        latest = {d.id: d for d in versions.values()}  # ordered by version: last one wins
        self._versions = versions
        self.current = Catalog.of([Provider.model_validate(p) for p in providers],
                                  list(latest.values()))
        self._fingerprint = fingerprint
        return True

    def version(self, definition_id: str, version: int) -> Definition | None:
        return self._versions.get((definition_id, version))

    async def definition_at(self, definition_id: str, version: int,
                            timeout: float = 10.0) -> Definition | None:  # noqa: ASYNC109
        """The definition as it was at `version`, waiting briefly when our projection is
        behind the sender's (a decision can overtake the definition it was made under)."""
        deadline = time.monotonic() + timeout
        while (found := self.version(definition_id, version)) is None:
            latest = self.current.definition(definition_id)
            if (latest and latest.version > version) or time.monotonic() > deadline:
                return None  # older than anything we know, or never coming
            await asyncio.sleep(0.2)
            await self.refresh()
        return found

    async def follow(self) -> None:
        """Keep `current` fresh: after our own commits and every `poll` seconds."""
        while True:
            try:
                await asyncio.wait_for(self._poke.wait(), timeout=self._poll)
            except TimeoutError:
                pass
            self._poke.clear()
            try:
                await self.refresh()
            except Exception as exc:
                logs.failure(log, "catalogue reload failed; retrying", exc)
