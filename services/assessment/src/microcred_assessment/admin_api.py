"""Operator admin API: onboard providers, give them credentials, publish definitions, and
read the audit log. Every route needs MICROCRED_OPERATOR_TOKEN; every change is audited."""

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from microcred_assessment import audit, keys, onboarding, principals
from microcred_assessment.authn import operator_auth
from microcred_assessment.kafka_admin import KafkaAdminError
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared.catalog import Definition, Provider
from microcred_shared.problems import Problem

# The auth dependencies are built per app (they need the runtime), so FastAPI gets them
# from annotations evaluated inside routes(); mypy sees what they resolve to.
if TYPE_CHECKING:
    Operator = str


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=1000)


def routes(app: FastAPI, rt: AssessmentRuntime) -> None:
    token = rt.settings.operator_token
    if not TYPE_CHECKING:
        Operator = operator_auth(rt, lambda: token.get_secret_value() if token else None)

    def changed() -> None:
        assert rt.relay is not None
        rt.relay.wake()
        rt.catalog.poke()

    async def refreshed() -> None:
        # This instance must judge the next result by the state it just wrote.
        await rt.catalog.refresh()
        changed()

    def begin() -> Any:
        assert rt.engine is not None
        return rt.engine.begin()

    @app.get("/v1/admin/providers")
    async def list_providers(_: Operator) -> list[dict[str, Any]]:
        return [p.model_dump(mode="json") for p in rt.catalog.current.providers]

    @app.post("/v1/admin/providers", status_code=201)
    async def create_provider(body: Provider, actor: Operator) -> dict[str, Any]:
        async with begin() as conn:
            provider = await onboarding.create_provider(conn, body, actor)
        await refreshed()
        return provider.model_dump(mode="json")

    @app.get("/v1/admin/providers/{provider_id}")
    async def get_provider(provider_id: str, _: Operator) -> dict[str, Any]:
        async with begin() as conn:
            provider = await onboarding.get_provider(conn, provider_id)
            if provider is None:
                raise Problem(404, "Not found", f"no provider {provider_id!r}",
                              kind="not-found")
            return {**provider.model_dump(mode="json"),
                    "api_keys": await keys.listing(conn, provider_id),
                    "kafka_principal": _principal_row(
                        await principals.current(conn, provider_id))}

    @app.put("/v1/admin/providers/{provider_id}")
    async def update_provider(provider_id: str, body: Provider,
                              actor: Operator) -> dict[str, Any]:
        if body.id != provider_id:
            raise Problem(422, "Id mismatch", "the body names another provider",
                          kind="invalid-request")
        async with begin() as conn:
            provider = await onboarding.update_provider(conn, body, actor)
        await refreshed()
        return provider.model_dump(mode="json")

    async def _set_status(provider_id: str, status: Literal["active", "suspended"],
                          reason: str, actor: str) -> dict[str, Any]:
        async with begin() as conn:
            provider = await onboarding.set_status(conn, provider_id, status, reason, actor)
        await refreshed()
        return provider.model_dump(mode="json")

    @app.post("/v1/admin/providers/{provider_id}/suspend")
    async def suspend(provider_id: str, body: Reason, actor: Operator) -> dict[str, Any]:
        """New results are refused with the reason; past credentials stay verifiable."""
        return await _set_status(provider_id, "suspended", body.reason, actor)

    @app.post("/v1/admin/providers/{provider_id}/reactivate")
    async def reactivate(provider_id: str, body: Reason, actor: Operator) -> dict[str, Any]:
        return await _set_status(provider_id, "active", body.reason, actor)

    @app.post("/v1/admin/providers/{provider_id}/api-keys", status_code=201)
    async def create_api_key(provider_id: str, actor: Operator) -> dict[str, Any]:
        async with begin() as conn:
            await _provider(conn, provider_id)
            key, key_id = await keys.mint(conn, provider_id)
            await _audit_change(conn, actor, provider_id, "api-key.create", key_id)
        changed()
        return {"provider_id": provider_id, "key_id": key_id, "api_key": key}

    @app.post("/v1/admin/providers/{provider_id}/api-keys/{key_id}/rotate", status_code=201)
    async def rotate_api_key(provider_id: str, key_id: str, actor: Operator,
                             ) -> dict[str, Any]:
        async with begin() as conn:
            if not await keys.revoke(conn, key_id, provider_id):
                raise Problem(404, "Not found", f"no active key {key_id} of {provider_id}",
                              kind="not-found")
            key, new_id = await keys.mint(conn, provider_id)
            await _audit_change(conn, actor, provider_id, "api-key.rotate",
                                f"{key_id} -> {new_id}")
        rt.key_verifier.forget()
        changed()
        return {"provider_id": provider_id, "key_id": new_id, "api_key": key,
                "revoked_key_id": key_id}

    @app.delete("/v1/admin/providers/{provider_id}/api-keys/{key_id}")
    async def revoke_api_key(provider_id: str, key_id: str, actor: Operator,
                             ) -> dict[str, Any]:
        async with begin() as conn:
            if not await keys.revoke(conn, key_id, provider_id):
                raise Problem(404, "Not found", f"no active key {key_id} of {provider_id}",
                              kind="not-found")
            await _audit_change(conn, actor, provider_id, "api-key.revoke", key_id)
        rt.key_verifier.forget()
        changed()
        return {"provider_id": provider_id, "key_id": key_id, "revoked": True}

    @app.post("/v1/admin/providers/{provider_id}/kafka-principal", status_code=201)
    async def kafka_principal(provider_id: str, actor: Operator) -> dict[str, Any]:
        return await _principal_change(provider_id, actor, "create")

    @app.post("/v1/admin/providers/{provider_id}/kafka-principal/rotate", status_code=201)
    async def rotate_kafka_principal(provider_id: str, actor: Operator) -> dict[str, Any]:
        return await _principal_change(provider_id, actor, "rotate")

    @app.delete("/v1/admin/providers/{provider_id}/kafka-principal")
    async def revoke_kafka_principal(provider_id: str, actor: Operator) -> dict[str, Any]:
        return await _principal_change(provider_id, actor, "revoke")

    async def _principal_change(provider_id: str, actor: str, action: str) -> dict[str, Any]:
        admin = rt.kafka_admin
        async with begin() as conn:
            await _provider(conn, provider_id)
            existing = await principals.current(conn, provider_id)
            if action != "create" and existing is None:
                raise Problem(404, "Not found", f"{provider_id} has no Kafka principal",
                              kind="not-found")
            try:
                if action == "revoke":
                    await principals.revoke(conn, admin, provider_id)
                    out: dict[str, Any] = {"provider_id": provider_id, "revoked": True}
                else:
                    op = principals.create if action == "create" else principals.rotate
                    principal = await op(conn, admin, provider_id)
                    out = principals.describe(principal, rt.settings.kafka_provider_bootstrap)
            except KafkaAdminError as exc:
                raise Problem(502, "Broker refused", str(exc), kind="broker-error") from exc
            await _audit_change(conn, actor, provider_id, f"kafka-principal.{action}",
                                principals.username_for(provider_id))
        return out

    @app.get("/v1/admin/definitions")
    async def list_definitions(_: Operator, provider: str | None = None,
                               ) -> list[dict[str, Any]]:
        return [d.model_dump(mode="json") for d in rt.catalog.current.definitions
                if provider is None or d.provider_id == provider]

    @app.get("/v1/admin/definitions/{definition_id}")
    async def get_definition(definition_id: str, _: Operator) -> dict[str, Any]:
        d = rt.catalog.current.definition(definition_id)
        if d is None:
            raise Problem(404, "Not found", f"no definition {definition_id!r}",
                          kind="not-found")
        return d.model_dump(mode="json")

    @app.post("/v1/admin/definitions", status_code=201)
    async def create_definition(body: Definition, actor: Operator) -> dict[str, Any]:
        async with begin() as conn:
            d = await onboarding.create_definition(conn, body, actor)
        await refreshed()
        return d.model_dump(mode="json")

    @app.put("/v1/admin/definitions/{definition_id}")
    async def new_version(definition_id: str, body: Definition,
                          actor: Operator) -> dict[str, Any]:
        if body.id != definition_id:
            raise Problem(422, "Id mismatch", "the body names another definition",
                          kind="invalid-request")
        async with begin() as conn:
            d = await onboarding.new_version(conn, body, actor)
        await refreshed()
        return d.model_dump(mode="json")

    @app.post("/v1/admin/definitions/{definition_id}/retire")
    async def retire(definition_id: str, body: Reason, actor: Operator) -> dict[str, Any]:
        async with begin() as conn:
            d = await onboarding.retire(conn, definition_id, body.reason, actor)
        await refreshed()
        return d.model_dump(mode="json")

    @app.get("/v1/admin/audit")
    async def audit_log(_: Operator, provider: str | None = None,
                        since: datetime | None = None,
                        outcome: Literal["refused", "changed"] | None = None,
                        limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
        async with begin() as conn:
            entries = await audit.query(conn, provider=provider, since=since,
                                        outcome=outcome, limit=limit)
        return {"count": len(entries), "entries": entries}


async def _provider(conn: Any, provider_id: str) -> Provider:
    provider = await onboarding.get_provider(conn, provider_id)
    if provider is None:
        raise Problem(404, "Not found", f"no provider {provider_id!r}", kind="not-found")
    return provider


async def _audit_change(conn: Any, actor: str, provider_id: str, action: str,
                        subject: str) -> None:
    await audit.record(conn, channel="admin", actor=actor, provider_id=provider_id,
                       action=action, outcome="changed", reason=action.split(".")[-1],
                       details={"subject": subject})


def _principal_row(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"username": row.username, "topic": row.topic,
            "created_at": row.created_at.isoformat(),
            "rotated_at": row.rotated_at.isoformat() if row.rotated_at else None}
