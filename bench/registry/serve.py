"""The registry service for the registry benchmark: the service's own app (every router,
dependency and middleware of microcred_registry.main.build), served by uvicorn as in
production, against the benchmark's database, without its Kafka side: the benchmark loads
rows with COPY and applies status changes through the service's consumer code itself, so
no broker is started (the runtime's start would otherwise connect its producer and
consumers). The database is migrated by the benchmark before this starts."""

from __future__ import annotations

from microcred_registry.main import build
from microcred_registry.settings import Settings
from microcred_shared.db import make_engine
from microcred_shared.runtime import serve


def main() -> None:
    settings = Settings()
    app, rt = build(settings)

    async def start() -> None:
        rt.engine = make_engine(settings.database_url)

    async def stop() -> None:
        close_reads = getattr(rt, "_close_reads", None)  # the read engine, where there is one
        if close_reads is not None:
            await close_reads()
        if rt.engine is not None:
            await rt.engine.dispose()

    rt.start = start  # type: ignore[method-assign]
    rt.stop = stop  # type: ignore[method-assign]
    serve(app, settings)


if __name__ == "__main__":
    main()
