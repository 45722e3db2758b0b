"""`python -m microcred_assessment` serves; `... keys create PROVIDER` mints an API key."""

from __future__ import annotations

import asyncio
import sys

from microcred_assessment.settings import Settings


async def _create_key(provider_id: str) -> str:
    from microcred_shared.db import ensure_database, make_engine, migrate

    from microcred_assessment.keys import create_key
    from microcred_assessment.models import MIGRATIONS

    settings = Settings()
    if settings.server_database_url and not settings.own_database_url:
        await ensure_database(settings.server_database_url, settings.database_name)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        await migrate(engine, MIGRATIONS)
        return await create_key(engine, provider_id)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> None:
    if argv[:2] == ["keys", "create"] and len(argv) == 3:
        print(asyncio.run(_create_key(argv[2])))
        return
    if argv:
        sys.exit("usage: python -m microcred_assessment [keys create PROVIDER_ID]")
    from microcred_shared.runtime import serve

    from microcred_assessment.main import build

    app, rt = build()
    serve(app, rt.settings)


main(sys.argv[1:])
