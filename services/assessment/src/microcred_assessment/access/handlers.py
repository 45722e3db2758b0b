"""Operator use cases on a provider's credentials: HTTP API keys and the Kafka principal.
Each change is audited in its transaction; secrets are shown once and never stored.

A credential is only given to a provider in the catalogue: checked against the catalogue
projection (a shared table every service keeps), so this context needs nothing of the
catalogue context, which shows a provider's credentials through `credentials_of`."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_assessment.access import keys, principals
from microcred_assessment.access.domain import describe, username_for
from microcred_assessment.access.kafka_admin import KafkaAdmin, KafkaAdminError
from microcred_assessment.access.models import KafkaPrincipal
from microcred_assessment.audit import handlers as audit
from microcred_shared.problems import Problem
from microcred_shared.projection import CatalogProvider

PrincipalAction = Literal["create", "rotate", "revoke"]


async def _require_provider(conn: AsyncConnection, provider_id: str) -> None:
    found = (await conn.execute(sa.select(col(CatalogProvider.id)).where(
        col(CatalogProvider.id) == provider_id))).scalar_one_or_none()
    if found is None:
        raise Problem(404, "Not found", f"no provider {provider_id!r}", kind="not-found")


async def _audit_change(conn: AsyncConnection, actor: str, provider_id: str, action: str,
                        subject: str) -> None:
    await audit.record(conn, channel="admin", actor=actor, provider_id=provider_id,
                       action=action, outcome="changed", reason=action.split(".")[-1],
                       details={"subject": subject})


def _no_active_key(provider_id: str, key_id: str) -> Problem:
    return Problem(404, "Not found", f"no active key {key_id} of {provider_id}",
                   kind="not-found")


async def create_api_key(engine: AsyncEngine, provider_id: str, actor: str) -> dict[str, Any]:
    async with engine.begin() as conn:
        await _require_provider(conn, provider_id)
        key, key_id = await keys.mint(conn, provider_id)
        await _audit_change(conn, actor, provider_id, "api-key.create", key_id)
    return {"provider_id": provider_id, "key_id": key_id, "api_key": key}


async def rotate_api_key(engine: AsyncEngine, provider_id: str, key_id: str,
                         actor: str) -> dict[str, Any]:
    """The new key replaces the old one at once: no overlap (see keys)."""
    async with engine.begin() as conn:
        if not await keys.revoke(conn, key_id, provider_id):
            raise _no_active_key(provider_id, key_id)
        key, new_id = await keys.mint(conn, provider_id)
        await _audit_change(conn, actor, provider_id, "api-key.rotate",
                            f"{key_id} -> {new_id}")
    return {"provider_id": provider_id, "key_id": new_id, "api_key": key,
            "revoked_key_id": key_id}


async def revoke_api_key(engine: AsyncEngine, provider_id: str, key_id: str,
                         actor: str) -> dict[str, Any]:
    async with engine.begin() as conn:
        if not await keys.revoke(conn, key_id, provider_id):
            raise _no_active_key(provider_id, key_id)
        await _audit_change(conn, actor, provider_id, "api-key.revoke", key_id)
    return {"provider_id": provider_id, "key_id": key_id, "revoked": True}


async def change_principal(engine: AsyncEngine, admin: KafkaAdmin, provider_id: str,
                           actor: str, action: PrincipalAction, *,
                           bootstrap: str | None) -> dict[str, Any]:
    """Create, rotate or revoke the provider's Kafka principal (the broker first, see
    principals); a broker refusal is a 502 and changes nothing here."""
    async with engine.begin() as conn:
        await _require_provider(conn, provider_id)
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
                out = describe(await op(conn, admin, provider_id), bootstrap)
        except KafkaAdminError as exc:
            raise Problem(502, "Broker refused", str(exc), kind="broker-error") from exc
        await _audit_change(conn, actor, provider_id, f"kafka-principal.{action}",
                            username_for(provider_id))
    return out


async def credentials_of(conn: AsyncConnection, provider_id: str) -> dict[str, Any]:
    """The provider's API keys (ids and dates only) and its current Kafka principal."""
    row = await principals.current(conn, provider_id)
    return {"api_keys": await keys.listing(conn, provider_id),
            "kafka_principal": None if row is None else {
                "username": row.username, "topic": row.topic,
                "created_at": row.created_at.isoformat(),
                "rotated_at": row.rotated_at.isoformat() if row.rotated_at else None}}


async def principals_by_username(conn: AsyncConnection, users: set[str]) -> dict[str, Any]:
    """Whose principals these broker user names are (the audit context asks, to say
    whose a refusal inside the broker was)."""
    if not users:
        return {}
    found = await conn.execute(sa.select(KafkaPrincipal).where(
        col(KafkaPrincipal.username).in_(users)))
    return {r.username: r for r in found}  # Rows with KafkaPrincipal's columns, by user name
