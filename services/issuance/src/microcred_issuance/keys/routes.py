"""Key rotation by the operator."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from microcred_issuance.deps import Operator, Runtime
from microcred_issuance.keys import handlers
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter()


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compromised: bool = False


@router.post("/v1/admin/providers/{provider_id}/keys/rotate", responses=problems.responses(404))
async def rotate(provider_id: str, body: Rotation, _: Operator, rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None and rt.relay is not None
    try:
        rotated = await handlers.rotate(rt.engine, rt.keys, rt.catalog.current, provider_id,
                                        compromised=body.compromised, base_url=rt.base_url)
    except handlers.UnknownProvider as exc:
        raise Problem(404, "Not found", f"no provider {provider_id!r}",
                      kind="not-found") from exc
    rt.relay.wake()
    return {"provider_id": provider_id, "active_key": rotated.key.key_id,
            "previous_key": "compromised" if body.compromised else "retired"}
