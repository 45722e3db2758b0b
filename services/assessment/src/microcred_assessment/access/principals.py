"""Kafka SCRAM principals for providers that publish directly (ADR 11).

The broker change comes first, then the row: if the broker refuses, nothing is recorded;
if the database then fails, the operator retries and the broker change is repeated
(setting a password and granting ACLs are idempotent).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_assessment.access.domain import Principal
from microcred_assessment.access.kafka_admin import KafkaAdmin
from microcred_assessment.access.models import KafkaPrincipal
from microcred_shared.db import table_of


async def current(conn: AsyncConnection, provider_id: str) -> KafkaPrincipal | None:
    row = (await conn.execute(sa.select(KafkaPrincipal).where(
        col(KafkaPrincipal.provider_id) == provider_id,
        col(KafkaPrincipal.revoked_at).is_(None)))).first()
    return row  # type: ignore[return-value]  # a Row with KafkaPrincipal's columns


async def create(conn: AsyncConnection, admin: KafkaAdmin, provider_id: str) -> Principal:
    await admin.ensure_topics(provider_id)
    principal = await admin.set_password(provider_id)
    await admin.grant(provider_id)
    table = table_of(KafkaPrincipal)
    values = {"provider_id": provider_id, "username": principal.username,
              "topic": principal.topic, "created_at": datetime.now(UTC), "rotated_at": None,
              "revoked_at": None}
    await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
        index_elements=[table.c.provider_id], set_=values))
    return principal


async def rotate(conn: AsyncConnection, admin: KafkaAdmin, provider_id: str) -> Principal:
    """A new password; the old one stops authenticating new connections at once, and
    open sessions must re-authenticate within the broker's connections.max.reauth.ms."""
    principal = await admin.set_password(provider_id)
    await conn.execute(sa.update(KafkaPrincipal).where(
        col(KafkaPrincipal.provider_id) == provider_id).values(rotated_at=datetime.now(UTC)))
    return principal


async def revoke(conn: AsyncConnection, admin: KafkaAdmin, provider_id: str) -> None:
    """ACLs first: they are checked on every request, so even a session that is already
    authenticated can no longer write."""
    await admin.revoke_grants(provider_id)
    await admin.delete_user(provider_id)
    await conn.execute(sa.update(KafkaPrincipal).where(
        col(KafkaPrincipal.provider_id) == provider_id).values(revoked_at=datetime.now(UTC)))
