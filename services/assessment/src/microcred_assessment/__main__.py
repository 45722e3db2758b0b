"""`python -m microcred_assessment` serves; `... admin --help` is the operator CLI (over the
admin API); `... keys create PROVIDER` / `keys revoke KEY_ID` mint and revoke an API key
straight in the database (bootstrap, before the service runs); `... ship-broker-audit LOG`
ships the broker's audit log into the audit log (a sidecar beside the broker, ADR 13)."""

from __future__ import annotations

import asyncio
import sys

from microcred_assessment.settings import Settings


async def _keys(action: str, arg: str) -> str:
    from microcred_assessment.access.keys import create_key, revoke_key
    from microcred_assessment.models import MIGRATIONS
    from microcred_shared.db import ensure_database, make_engine, migrate

    settings = Settings()
    if settings.server_database_url and not settings.own_database_url:
        await ensure_database(settings.server_database_url, settings.database_name)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        await migrate(engine, MIGRATIONS)
        if action == "create":
            return await create_key(engine, arg)
        return "revoked" if await revoke_key(engine, arg) else "no such active key"
    finally:
        await engine.dispose()


def main(argv: list[str]) -> None:
    if argv and argv[0] == "admin":
        from microcred_assessment.cli import app as cli

        cli(args=argv[1:], prog_name="python -m microcred_assessment admin")
        return
    if len(argv) == 3 and argv[0] == "keys" and argv[1] in ("create", "revoke"):
        print(asyncio.run(_keys(argv[1], argv[2])))
        return
    if len(argv) == 2 and argv[0] == "ship-broker-audit":
        from pathlib import Path

        from microcred_assessment.audit.shipper import ship_forever

        settings = Settings()
        asyncio.run(ship_forever(Path(argv[1]), settings.kafka_bootstrap_servers,
                                 settings.kafka_client_options()))
        return
    if argv:
        sys.exit("usage: python -m microcred_assessment "
                 "[admin ... | keys create PROVIDER_ID | keys revoke KEY_ID"
                 " | ship-broker-audit BROKER_AUDIT_LOG]")
    from microcred_assessment.main import build
    from microcred_shared.runtime import serve

    app, rt = build()
    serve(app, rt.settings)


main(sys.argv[1:])
