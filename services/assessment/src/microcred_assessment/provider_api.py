"""What a provider may read about itself with its API key — and nothing about the others.

A request for another provider's definition is refused (403) and audited; the existence of
a definition is no secret (it is in every credential issued under it), its admin data is.
"""

from typing import Any

from fastapi import FastAPI, Query

from microcred_assessment import audit
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared.problems import Problem


def routes(app: FastAPI, rt: AssessmentRuntime, Provider: Any) -> None:  # noqa: N803
    def catalog() -> Any:
        return rt.catalog.current

    @app.get("/v1/provider/profile")
    async def profile(provider_id: Provider) -> dict[str, Any]:
        provider = catalog().provider(provider_id)
        if provider is None:
            raise Problem(404, "Not found", "your provider is not in the catalogue yet",
                          kind="not-found")
        return provider.model_dump(mode="json")

    @app.get("/v1/provider/definitions")
    async def definitions(provider_id: Provider) -> dict[str, Any]:
        """Definitions this provider owns or co-issues: the ones it may submit for."""
        mine = [d for d in catalog().definitions if d.may_submit(provider_id)]
        return {"count": len(mine), "definitions": [d.model_dump(mode="json") for d in mine]}

    @app.get("/v1/provider/definitions/{definition_id}")
    async def definition(definition_id: str, provider_id: Provider) -> dict[str, Any]:
        d = catalog().definition(definition_id)
        if d is None:
            raise Problem(404, "Not found", f"no definition {definition_id!r}",
                          kind="not-found")
        if not d.may_submit(provider_id):
            assert rt.engine is not None
            await audit.record_now(rt.engine, channel="http", actor=f"provider:{provider_id}",
                                   provider_id=provider_id, action="read.foreign-definition",
                                   reason=f"{definition_id!r} belongs to {d.provider_id!r}",
                                   details={"definition_id": definition_id})
            assert rt.relay is not None
            rt.relay.wake()
            raise Problem(403, "Forbidden", "this definition belongs to another provider",
                          kind="forbidden")
        return d.model_dump(mode="json")

    @app.get("/v1/provider/audit")
    async def own_audit(provider_id: Provider,
                        limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """The refusals that concern this provider, so it can see what went wrong."""
        assert rt.engine is not None
        async with rt.engine.connect() as conn:
            entries = await audit.query(conn, provider=provider_id, since=None,
                                        outcome="refused", limit=limit)
        return {"count": len(entries), "entries": entries}
