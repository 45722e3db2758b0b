"""The employer feed's HTTP routes: parse, authorise (deps), call the use case, answer.
Registration and the operator's employer administration, then an employer's subscriptions
and pull feed, then the operator's delivery audit and replays (the OpenAPI order)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Response

from microcred_notify.deps import Employer, Operator, Runtime
from microcred_notify.employer_feed import audit, employers, subscriptions
from microcred_notify.employer_feed import feed as pull_feed
from microcred_notify.employer_feed.audit import ReplayRange
from microcred_notify.employer_feed.employers import EmployerCreate, EmployerRename
from microcred_notify.employer_feed.subscriptions import SubscriptionCreate
from microcred_shared import problems

router = APIRouter()


@router.post("/v1/employers", status_code=201)
async def register(body: EmployerCreate, rt: Runtime) -> dict[str, Any]:
    """An employer asks to join; an operator approves it before it can subscribe."""
    row = await employers.register(rt.db, body)
    rt.published()
    return employers.public(row)


@router.get("/v1/admin/employers")
async def list_employers(_: Operator, rt: Runtime, status: str | None = None) -> dict[str, Any]:
    rows = await employers.list_employers(rt.db, status)
    return {"employers": [employers.public(r) for r in rows]}


@router.post("/v1/admin/employers/{employer_id}/approve", responses=problems.responses(404, 409))
async def approve(employer_id: str, _: Operator, rt: Runtime) -> dict[str, Any]:
    """Approve (or reinstate) an employer; the answer carries its new API key, once."""
    row, token = await employers.approve(rt.db, employer_id)
    rt.published()
    return {**employers.public(row), "api_key": token}


@router.post("/v1/admin/employers/{employer_id}/suspend", responses=problems.responses(404, 409))
async def suspend(employer_id: str, _: Operator, rt: Runtime) -> dict[str, Any]:
    row = await employers.suspend(rt.db, employer_id)
    rt.published()
    return employers.public(row)


@router.patch("/v1/admin/employers/{employer_id}", responses=problems.responses(404))
async def rename(employer_id: str, body: EmployerRename, _: Operator,
                 rt: Runtime) -> dict[str, Any]:
    """Correct an employer's name or website (learners see the new name)."""
    row = await employers.rename(rt.db, employer_id, body)
    rt.published()
    return employers.public(row)


@router.post("/v1/employer/subscriptions", responses=problems.responses(409), status_code=201)
async def create(body: SubscriptionCreate, employer_id: Employer,
                 rt: Runtime) -> dict[str, Any]:
    return await subscriptions.create(
        rt.db, rt.employers.box, employer_id, body,
        allow_loopback_http=rt.settings.webhooks_allow_loopback_http)


@router.get("/v1/employer/subscriptions")
async def list_(employer_id: Employer, rt: Runtime) -> dict[str, Any]:
    rows = await subscriptions.list_own(rt.db, employer_id)
    return {"subscriptions": [subscriptions.public(r) for r in rows]}


@router.get("/v1/employer/subscriptions/{subscription_id}", responses=problems.responses(404))
async def get(subscription_id: uuid.UUID, employer_id: Employer, rt: Runtime) -> dict[str, Any]:
    return subscriptions.public(await subscriptions.get(rt.db, subscription_id, employer_id))


@router.delete("/v1/employer/subscriptions/{subscription_id}",
               responses=problems.responses(404), status_code=204)
async def delete(subscription_id: uuid.UUID, employer_id: Employer, rt: Runtime) -> Response:
    """Stops the subscription; what was on its way to the endpoint is cancelled. The
    row stays for the delivery audit."""
    await subscriptions.delete(rt.db, subscription_id, employer_id)
    return Response(status_code=204)


@router.post("/v1/employer/subscriptions/{subscription_id}/enable",
             responses=problems.responses(404, 409))
async def enable(subscription_id: uuid.UUID, employer_id: Employer,
                 rt: Runtime) -> dict[str, Any]:
    """Turn a disabled endpoint back on: deliveries held while it was off go out."""
    return subscriptions.public(await subscriptions.enable(rt.db, subscription_id, employer_id))


@router.get("/v1/employer/feed", responses=problems.responses(429))
async def feed(employer_id: Employer, rt: Runtime, cursor: str | None = None,
               limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    """Entries after `cursor` (from the start without one). Keep `next_cursor` and come
    back with it: nothing is skipped and nothing repeats."""
    return await pull_feed.read(rt.db, rt.employers.limiter(rt), employer_id, cursor, limit)


@router.get("/v1/admin/deliveries")
async def deliveries(_: Operator, rt: Runtime, employer: str | None = None,
                     credential: uuid.UUID | None = None,
                     limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
    return await audit.deliveries(rt.db, employer, credential, limit)


@router.post("/v1/admin/deliveries/{delivery_id}/replay",
             responses=problems.responses(404, 409), status_code=202)
async def replay_one(delivery_id: uuid.UUID, _: Operator, rt: Runtime) -> dict[str, Any]:
    new_id = await audit.replay_one(rt.db, delivery_id)
    rt.employers.wake.set()
    return {"replayed": [str(new_id)]}


@router.post("/v1/admin/deliveries/replay", status_code=202)
async def replay_range(body: ReplayRange, _: Operator, rt: Runtime) -> dict[str, Any]:
    """Send again an employer's deliveries created in [since, until) whose latest outcome
    is one of `statuses` (default: failed)."""
    ids = await audit.replay_range(rt.db, body)
    rt.employers.wake.set()
    return {"replayed": [str(i) for i in ids]}
