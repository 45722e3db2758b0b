"""The provider's status route in-process (route, dependencies, problem handlers, a real
database): suspending a credential issued without a suspension entry is a 409 problem
that says what to do instead (ADR 8); revoking it, and suspending a suspendable one, work."""

from __future__ import annotations

import types
from functools import partial
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from microcred_issuance import deps
from microcred_issuance.issuing.handlers import on_decisions
from microcred_issuance.status import routes
from microcred_shared import problems
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentDecided

SAFETY, SITE = "lakeshore-workplace-safety", "ocsc-site-supervisor-readiness"
LAKESHORE, OCSC = "lakeshore-college", "ontario-construction-sector-council"


class _Relay:
    def wake(self) -> None:
        pass


def app_for(world: Any, provider: str) -> httpx.AsyncClient:
    rt = types.SimpleNamespace(engine=world.engine, relay=_Relay(), signer=world.signer,
                               status_followers=[])
    api = FastAPI()
    problems.install(api)
    api.include_router(routes.router)
    api.dependency_overrides[deps._runtime] = lambda: rt
    api.dependency_overrides[deps._provider] = lambda: provider
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://issuance")


async def issued(world: Any, definition: str) -> str:
    await world.deliver(topics.DECISIONS, [world.decided(definition)],
                        partial(on_decisions, ctx=world.issuing), AssessmentDecided)
    rows = await world.rows("SELECT credential_id FROM issued_credentials "
                            "WHERE definition_id = :d", d=definition)
    return str(rows[-1].credential_id)


async def test_suspending_a_credential_without_a_suspension_entry_is_a_409_saying_revoke(
        world: Any) -> None:
    reason = "course content withdrawn"
    cid = await issued(world, SAFETY)
    async with app_for(world, LAKESHORE) as client:
        r = await client.post(f"/v1/credentials/{cid}/status",
                              json={"action": "suspend", "reason": reason})
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["type"].endswith("/not-suspendable")
        assert body["detail"] == "this credential cannot be suspended; revoke it instead"
        assert await world.scalar("SELECT status FROM issued_credentials "
                                  "WHERE credential_id = :c", c=cid) == "active"
        r = await client.post(f"/v1/credentials/{cid}/status",
                              json={"action": "revoke", "reason": reason})
        assert r.status_code == 200 and r.json()["status"] == "revoked", r.text


async def test_a_suspendable_credential_is_suspended_and_reinstated_over_http(world: Any) -> None:
    cid = await issued(world, SITE)
    async with app_for(world, OCSC) as client:
        for action, status in (("suspend", "suspended"), ("unsuspend", "active")):
            r = await client.post(f"/v1/credentials/{cid}/status",
                                  json={"action": action, "reason": "licence review"})
            assert r.status_code == 200 and r.json()["status"] == status, r.text
    async with world.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE topic = :t"),
                                   {"t": topics.CREDENTIAL_STATUS})).scalar() == 2
