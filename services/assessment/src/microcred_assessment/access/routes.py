"""The operator gives a provider its credentials: HTTP API keys and a Kafka principal.
Every route needs MICROCRED_OPERATOR_TOKEN; every change is audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from microcred_assessment.access import handlers as access
from microcred_assessment.access.handlers import PrincipalAction
from microcred_assessment.deps import Operator, Runtime
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared import problems

router = APIRouter()


def _changed(rt: AssessmentRuntime, *, revoked: bool) -> None:
    if revoked:
        rt.key_verifier.forget()  # this instance stops accepting the key at once
    assert rt.relay is not None
    rt.relay.wake()
    rt.catalog.poke()


@router.post("/v1/admin/providers/{provider_id}/api-keys",
             responses=problems.responses(404), status_code=201)
async def create_api_key(provider_id: str, actor: Operator, rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    out = await access.create_api_key(rt.engine, provider_id, actor)
    _changed(rt, revoked=False)
    return out


@router.post("/v1/admin/providers/{provider_id}/api-keys/{key_id}/rotate",
             responses=problems.responses(404), status_code=201)
async def rotate_api_key(provider_id: str, key_id: str, actor: Operator,
                         rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    out = await access.rotate_api_key(rt.engine, provider_id, key_id, actor)
    _changed(rt, revoked=True)
    return out


@router.delete("/v1/admin/providers/{provider_id}/api-keys/{key_id}",
               responses=problems.responses(404))
async def revoke_api_key(provider_id: str, key_id: str, actor: Operator,
                         rt: Runtime) -> dict[str, Any]:
    assert rt.engine is not None
    out = await access.revoke_api_key(rt.engine, provider_id, key_id, actor)
    _changed(rt, revoked=True)
    return out


async def _principal_change(rt: AssessmentRuntime, provider_id: str, actor: str,
                            action: PrincipalAction) -> dict[str, Any]:
    assert rt.engine is not None
    return await access.change_principal(rt.engine, rt.kafka_admin, provider_id, actor,
                                         action, bootstrap=rt.settings.kafka_provider_bootstrap)


@router.post("/v1/admin/providers/{provider_id}/kafka-principal",
             responses=problems.responses(404, 502), status_code=201)
async def kafka_principal(provider_id: str, actor: Operator, rt: Runtime) -> dict[str, Any]:
    return await _principal_change(rt, provider_id, actor, "create")


@router.post("/v1/admin/providers/{provider_id}/kafka-principal/rotate",
             responses=problems.responses(404, 502), status_code=201)
async def rotate_kafka_principal(provider_id: str, actor: Operator,
                                 rt: Runtime) -> dict[str, Any]:
    return await _principal_change(rt, provider_id, actor, "rotate")


@router.delete("/v1/admin/providers/{provider_id}/kafka-principal",
               responses=problems.responses(404, 502))
async def revoke_kafka_principal(provider_id: str, actor: Operator,
                                 rt: Runtime) -> dict[str, Any]:
    return await _principal_change(rt, provider_id, actor, "revoke")
