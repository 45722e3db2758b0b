"""An employer's subscriptions: a filter, and optionally a webhook endpoint. The endpoint's
signing secret (`whsec_...`) is shown once, in the answer that creates it."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from microcred_notify.employer_domain import Filters, webhook_url_problem
from microcred_notify.employer_models import Subscription, WebhookDelivery
from microcred_notify.webhook_crypto import SecretBox, new_secret
from microcred_shared import netguard
from microcred_shared.db import table_of
from microcred_shared.problems import Problem

# The employer dependency is built per app (it needs the key verifier) and handed in, so
# FastAPI gets it from annotations evaluated inside routes(); mypy sees what it resolves to.
if TYPE_CHECKING:
    Employer = str


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


def routes(app: FastAPI, engine: Callable[[], AsyncEngine], employer: Any, box: SecretBox,
           allow_loopback_http: bool) -> None:
    if not TYPE_CHECKING:
        Employer = employer
    destinations = netguard.Policy(allow_loopback=allow_loopback_http)

    @app.post("/v1/employer/subscriptions", status_code=201)
    async def create(body: SubscriptionCreate, employer_id: Employer) -> dict[str, Any]:
        if body.webhook_url and (why := webhook_url_problem(body.webhook_url,
                                                            allow_loopback_http)
                                 or await netguard.url_problem(body.webhook_url, destinations)):
            raise Problem(422, "Webhook endpoint refused", why, kind="invalid-webhook-url")
        sub_id, secret = uuid.uuid4(), new_secret() if body.webhook_url else None
        sealed, nonce = box.seal(sub_id, secret) if secret else (None, None)
        now = datetime.now(UTC)
        async with engine().begin() as conn:
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

    @app.get("/v1/employer/subscriptions")
    async def list_(employer_id: Employer) -> dict[str, Any]:
        async with engine().connect() as conn:
            rows = (await conn.execute(sa.select(SUBS).where(
                SUBS.c.employer_id == employer_id, SUBS.c.status != "deleted")
                .order_by(SUBS.c.created_at))).all()
        return {"subscriptions": [public(r) for r in rows]}

    @app.get("/v1/employer/subscriptions/{subscription_id}")
    async def get(subscription_id: uuid.UUID, employer_id: Employer) -> dict[str, Any]:
        async with engine().connect() as conn:
            return public(await _own(conn, subscription_id, employer_id))

    @app.delete("/v1/employer/subscriptions/{subscription_id}", status_code=204)
    async def delete(subscription_id: uuid.UUID, employer_id: Employer) -> Response:
        """Stops the subscription; what was on its way to the endpoint is cancelled. The
        row stays for the delivery audit."""
        now = datetime.now(UTC)
        async with engine().begin() as conn:
            await _own(conn, subscription_id, employer_id)
            await conn.execute(sa.update(SUBS).where(SUBS.c.id == subscription_id).values(
                status="deleted", updated_at=now))
            await conn.execute(sa.update(WebhookDelivery).where(
                col(WebhookDelivery.subscription_id) == subscription_id,
                col(WebhookDelivery.status) == "pending").values(
                status="cancelled", finished_at=now, last_error="subscription deleted"))
        return Response(status_code=204)

    @app.post("/v1/employer/subscriptions/{subscription_id}/enable")
    async def enable(subscription_id: uuid.UUID, employer_id: Employer) -> dict[str, Any]:
        """Turn a disabled endpoint back on: deliveries held while it was off go out."""
        async with engine().begin() as conn:
            await _own(conn, subscription_id, employer_id)
            row = (await conn.execute(sa.update(SUBS).where(
                SUBS.c.id == subscription_id).values(
                status="active", disabled_reason=None, consecutive_failures=0,
                failing_since=None, updated_at=datetime.now(UTC)).returning(*SUBS.c))).one()
        return public(row)


async def _own(conn: Any, subscription_id: uuid.UUID, employer_id: str) -> Any:
    row = (await conn.execute(sa.select(SUBS).where(
        SUBS.c.id == subscription_id, SUBS.c.employer_id == employer_id,
        SUBS.c.status != "deleted"))).first()
    if row is None:
        raise Problem(404, "Not found", f"no subscription {subscription_id}", kind="not-found")
    return row
