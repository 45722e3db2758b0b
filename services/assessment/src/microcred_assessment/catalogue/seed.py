"""The seed file becomes operator actions: at first start of an empty system, and for
entries added to the file later (a new demo provider in an existing local state).

The seed (deploy/seed/providers.json) is imported through the same operations as the admin
API, so its providers and definitions are published on the compacted topics like any
other. An id already in the catalogue is never touched again: from then on the operator's
changes (new versions, suspensions) are what counts, and nothing can be deleted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from microcred_assessment.catalogue import handlers as onboarding
from microcred_shared.catalog import Catalog, load_catalog
from microcred_shared.projection import CatalogDefinition, CatalogProvider

log = logging.getLogger(__name__)


def load_seed(path: str | Path) -> Catalog | None:
    return load_catalog(path) if Path(path).is_file() else None


async def import_seed(engine: AsyncEngine, catalog: Catalog | None) -> int:
    """Publish the seed's providers and definitions that the catalogue lacks."""
    if catalog is None:
        return 0
    async with engine.begin() as conn:
        # Two instances starting together: one imports, the other then finds the rows.
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7700102)"))
        providers = set((await conn.execute(sa.select(col(CatalogProvider.id)))).scalars())
        definitions = set((await conn.execute(sa.select(col(CatalogDefinition.id)))).scalars())
        new_providers = [p for p in catalog.providers if p.id not in providers]
        for provider in new_providers:
            await onboarding.create_provider(conn, provider, "seed")
        # Components before the stacks made of them.
        new_definitions = sorted((d for d in catalog.definitions if d.id not in definitions),
                                 key=lambda d: d.stack is not None)
        for d in new_definitions:
            await onboarding.create_definition(conn, d, "seed", keep_version=True)
    count = len(new_providers) + len(new_definitions)
    if count:
        log.info("imported %d providers and definitions from the seed file", count)
    return count
