"""An employer's subscriptions: a filter, and optionally a webhook endpoint. The endpoint's
signing secret (`whsec_...`) is shown once, in the answer that creates it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.employer_feed.crypto import SecretBox, new_secret
from microcred_notify.employer_feed.domain import Filters, webhook_url_problem
from microcred_notify.employer_feed.models import Subscription, WebhookDelivery
from microcred_shared import netguard
from microcred_shared.db import table_of
from microcred_shared.problems import Problem

MAX_SUBSCRIPTIONS = 20
SUBS = table_of(Subscription)


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: Filters = Filters()
    webhook_url: str | None = Field(default=None, max_length=2000,
                                    description="https endpoint; none = pull feed only")
    description: str | None = Field(default=None, max_length=200)


def public(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "filters": row.filters, "webhook_url": row.webhook_url,
            "status": row.status, "disabled_reason": row.disabled_reason,
            "created_at": row.created_at.isoformat()}


async def create(engine: AsyncEngine, box: SecretBox, employer_id: str,
                 body: SubscriptionCreate, *, allow_loopback_http: bool) -> dict[str, Any]:
    """The new subscription, with its endpoint's signing secret when it has one."""
    destinations = netguard.Policy(allow_loopback=allow_loopback_http)
    if body.webhook_url and (why := webhook_url_problem(body.webhook_url, allow_loopback_http)
                             or await netguard.url_problem(body.webhook_url, destinations)):
        raise Problem(422, "Webhook endpoint refused", why, kind="invalid-webhook-url")
    sub_id, secret = uuid.uuid4(), new_secret() if body.webhook_url else None
    sealed, nonce = box.seal(sub_id, secret) if secret else (None, None)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).where(
            SUBS.c.employer_id == employer_id, SUBS.c.status != "deleted"))).scalar_one()
        if count >= MAX_SUBSCRIPTIONS:
            raise Problem(409, "Too many subscriptions",
                          f"an employer may hold {MAX_SUBSCRIPTIONS}", kind="conflict")
        row = (await conn.execute(sa.insert(SUBS).values(
            id=sub_id, employer_id=employer_id, filters=body.filters.model_dump(),
            webhook_url=body.webhook_url, secret_encrypted=sealed, secret_nonce=nonce,
            status="active", created_at=now, updated_at=now).returning(*SUBS.c))).one()
    return {**public(row), **({"secret": secret} if secret else {})}


async def list_own(engine: AsyncEngine, employer_id: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(SUBS).where(
            SUBS.c.employer_id == employer_id, SUBS.c.status != "deleted")
            .order_by(SUBS.c.created_at))).all())


async def get(engine: AsyncEngine, subscription_id: uuid.UUID, employer_id: str) -> Any:
    async with engine.connect() as conn:
        return await _own(conn, subscription_id, employer_id)


async def delete(engine: AsyncEngine, subscription_id: uuid.UUID, employer_id: str) -> None:
    """Stop the subscription and cancel what was on its way to the endpoint. The row stays
    for the delivery audit."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await _own(conn, subscription_id, employer_id)
        await conn.execute(sa.update(SUBS).where(SUBS.c.id == subscription_id).values(
            status="deleted", updated_at=now))
        await conn.execute(sa.update(WebhookDelivery).where(
            col(WebhookDelivery.subscription_id) == subscription_id,
            col(WebhookDelivery.status) == "pending").values(
            status="cancelled", finished_at=now, last_error="subscription deleted"))


async def enable(engine: AsyncEngine, subscription_id: uuid.UUID, employer_id: str) -> Any:
    """Turn a disabled endpoint back on: deliveries held while it was off go out."""
    async with engine.begin() as conn:
        await _own(conn, subscription_id, employer_id)
        return (await conn.execute(sa.update(SUBS).where(SUBS.c.id == subscription_id).values(
            status="active", disabled_reason=None, consecutive_failures=0,
            failing_since=None, updated_at=datetime.now(UTC)).returning(*SUBS.c))).one()


async def _own(conn: AsyncConnection, subscription_id: uuid.UUID, employer_id: str) -> Any:
    row = (await conn.execute(sa.select(SUBS).where(
        SUBS.c.id == subscription_id, SUBS.c.employer_id == employer_id,
        SUBS.c.status != "deleted"))).first()
    if row is None:
        raise Problem(404, "Not found", f"no subscription {subscription_id}", kind="not-found")
    return row
