"""The catalogue over HTTP: the operator onboards providers and publishes definitions
(/v1/admin: every route needs MICROCRED_OPERATOR_TOKEN, every change is audited); a
provider reads about itself with its API key, and nothing about the others (/v1/provider).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_assessment.catalogue import handlers as catalogue
from microcred_assessment.deps import Operator, ProviderId, Runtime
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared import problems
from microcred_shared.catalog import Definition, Provider
from microcred_shared.problems import Problem

router = APIRouter()
P = ParamSpec("P")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=1000)


async def _change(rt: AssessmentRuntime,
                  change: Callable[Concatenate[AsyncConnection, P], Awaitable[BaseModel]],
                  *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
    """One catalogue change (`change(conn, *args, **kwargs)`) in a transaction of its own;
    the changed provider or definition as JSON."""
    assert rt.engine is not None
    async with rt.engine.begin() as conn:
        changed = await change(conn, *args, **kwargs)
    # This instance must judge the next result by the state it just wrote.
    await rt.catalog.refresh()
    assert rt.relay is not None
    rt.relay.wake()
    rt.catalog.poke()
    return changed.model_dump(mode="json")


def _same_id(path_id: str, body_id: str, kind: str) -> None:
    if body_id != path_id:
        raise Problem(422, "Id mismatch", f"the body names another {kind}",
                      kind="invalid-request")


@router.get("/v1/admin/providers")
async def list_providers(_: Operator, rt: Runtime) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json") for p in rt.catalog.current.providers]


@router.post("/v1/admin/providers", responses=problems.responses(409), status_code=201)
async def create_provider(body: Provider, actor: Operator, rt: Runtime) -> dict[str, Any]:
    return await _change(rt, catalogue.create_provider, body, actor)


@router.get("/v1/admin/providers/{provider_id}", responses=problems.responses(404))
async def get_provider(provider_id: str, _: Operator, rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    async with rt.engine.begin() as conn:
        return await catalogue.provider_detail(conn, provider_id)


@router.put("/v1/admin/providers/{provider_id}", responses=problems.responses(404, 409))
async def update_provider(provider_id: str, body: Provider, actor: Operator,
                          rt: Runtime) -> dict[str, Any]:
    _same_id(provider_id, body.id, "provider")
    return await _change(rt, catalogue.update_provider, body, actor)


@router.post("/v1/admin/providers/{provider_id}/suspend", responses=problems.responses(404, 409))
async def suspend(provider_id: str, body: Reason, actor: Operator,
                  rt: Runtime) -> dict[str, Any]:
    """New results are refused with the reason; past credentials stay verifiable."""
    return await _change(rt, catalogue.set_status, provider_id, "suspended", body.reason, actor)


@router.post("/v1/admin/providers/{provider_id}/reactivate", responses=problems.responses(404, 409))
async def reactivate(provider_id: str, body: Reason, actor: Operator,
                     rt: Runtime) -> dict[str, Any]:
    return await _change(rt, catalogue.set_status, provider_id, "active", body.reason, actor)


@router.get("/v1/admin/definitions")
async def list_definitions(_: Operator, rt: Runtime, provider: str | None = None,
                           ) -> list[dict[str, Any]]:
    return [d.model_dump(mode="json") for d in rt.catalog.current.definitions
            if provider is None or d.provider_id == provider]


@router.get("/v1/admin/definitions/{definition_id}", responses=problems.responses(404))
async def get_definition(definition_id: str, _: Operator, rt: Runtime) -> dict[str, Any]:
    d = rt.catalog.current.definition(definition_id)
    if d is None:
        raise Problem(404, "Not found", f"no definition {definition_id!r}", kind="not-found")
    return d.model_dump(mode="json")


@router.post("/v1/admin/definitions", responses=problems.responses(409), status_code=201)
async def create_definition(body: Definition, actor: Operator,
                            rt: Runtime) -> dict[str, Any]:
    return await _change(rt, catalogue.create_definition, body, actor)


@router.put("/v1/admin/definitions/{definition_id}", responses=problems.responses(404, 409))
async def new_version(definition_id: str, body: Definition, actor: Operator,
                      rt: Runtime) -> dict[str, Any]:
    _same_id(definition_id, body.id, "definition")
    return await _change(rt, catalogue.new_version, body, actor)


@router.post("/v1/admin/definitions/{definition_id}/retire", responses=problems.responses(404, 409))
async def retire(definition_id: str, body: Reason, actor: Operator,
                 rt: Runtime) -> dict[str, Any]:
    return await _change(rt, catalogue.retire, definition_id, body.reason, actor)


@router.get("/v1/provider/profile", responses=problems.responses(404))
async def profile(provider_id: ProviderId, rt: Runtime) -> dict[str, Any]:
    provider = rt.catalog.current.provider(provider_id)
    if provider is None:
        raise Problem(404, "Not found", "your provider is not in the catalogue yet",
                      kind="not-found")
    return provider.model_dump(mode="json")


@router.get("/v1/provider/definitions")
async def definitions(provider_id: ProviderId, rt: Runtime) -> dict[str, Any]:
    """Definitions this provider owns or co-issues: the ones it may submit for."""
    mine = [d for d in rt.catalog.current.definitions if d.may_submit(provider_id)]
    return {"count": len(mine), "definitions": [d.model_dump(mode="json") for d in mine]}


@router.get("/v1/provider/definitions/{definition_id}", responses=problems.responses(403, 404))
async def definition(definition_id: str, provider_id: ProviderId,
                     rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None and rt.relay is not None
    try:
        d = await catalogue.definition_for(rt.engine, rt.catalog.current, provider_id,
                                           definition_id)
    except catalogue.ForeignDefinition:
        rt.relay.wake()  # the audit record
        raise
    return d.model_dump(mode="json")
