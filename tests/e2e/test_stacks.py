"""Stackable credentials across providers, on the real broker and database: the seed's
"Digital Skills for Construction Supervisors" (Ontario Construction Sector Council) is made
of Lakeshore College's data analytics credential and the council's supervisor readiness."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from microcred_issuance.migrations import MIGRATIONS
from microcred_issuance.stacks import handlers as stacks
from microcred_issuance.stacks.models import StackAward
from microcred_issuance.status.models import IssuedCredential
from microcred_shared.catalog import load_catalog
from microcred_shared.contract.events import learner_key
from microcred_shared.db import ensure_database, make_engine, migrate
from microcred_shared.settings import REPO_ROOT, database_url_for
from microcred_testkit.backbone import eventually, learner, result

pytestmark = pytest.mark.integration

STACK = "ocsc-digital-skills-construction-supervisors"
DATA, SITE = "lakeshore-data-analytics-fundamentals", "ocsc-site-supervisor-readiness"
LAKESHORE, OCSC = "lakeshore-college", "ontario-construction-sector-council"


def tag() -> str:
    return uuid.uuid4().hex[:6]


async def submit(bb, provider: str, res) -> None:
    async with bb.http("assessment", bb.api_keys[provider]) as client:
        r = await client.post("/v1/assessment-results", content=res.model_dump_json(),
                              headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text


async def credentials(bb, email: str, at_least: int) -> list[dict]:
    async with bb.http("registry", bb.operator_token) as client:
        async def probe():
            return (await client.get(f"/v1/learners/{learner_key(email)}/credentials")).json()
        body = await eventually(probe, lambda b: b["count"] >= at_least)
    return body["credentials"]


async def both_components_at_once(bb, who) -> None:
    await asyncio.gather(submit(bb, LAKESHORE, result(LAKESHORE, DATA, who=who, score=88)),
                         submit(bb, OCSC, result(OCSC, SITE, who=who, passed=True)))


async def test_a_stack_spanning_two_providers_is_issued_exactly_once_when_components_race(
        backbone):
    people = [learner(f"stack-race-{i}-{tag()}") for i in range(4)]
    await asyncio.gather(*(both_components_at_once(backbone, who) for who in people))
    for who in people:
        creds = await credentials(backbone, who.email, 3)
        stacked = [c for c in creds if c["provider"] == OCSC and c["title"].startswith("Digital")]
        assert len(stacked) == 1, [c["title"] for c in creds]
        # The award commits with the last component: the database already says it all.
        awards = await backbone.scalar(
            "issuance", "SELECT count(*) FROM issued_credentials WHERE definition_id = $1 "
            "AND learner_key = $2", STACK, learner_key(who.email))
        assert awards == 1
    doc = stacked[0]["credential"]
    component_urls = {c["url"] for c in creds if c["id"] != stacked[0]["id"]}
    assert set(doc["components"]) == component_urls
    assert doc["issuer"]["id"] == backbone.issuer_did(OCSC)
    # New credentials are private (ADR 9): the stack's issuer reads its verification.
    async with backbone.http("registry", backbone.api_keys[OCSC]) as client:
        v = (await client.get(f"/v1/credentials/{stacked[0]['id']}/verification")).json()
    assert v["verified"] is True, v["problems"]


async def scratch_engine(bb):
    name = f"microcred_stackrace_{tag()}"
    await ensure_database(bb.stack.database_url, name)
    engine = make_engine(database_url_for(bb.stack.database_url, name), pool_size=4)
    await migrate(engine, MIGRATIONS)
    return engine


async def component(conn, learner: str, definition_id: str, provider: str) -> None:
    await conn.execute(sa.insert(IssuedCredential).values(
        credential_id=uuid.uuid4(), provider_id=provider, definition_id=definition_id,
        definition_version=1, learner_key=learner, key_id="k", status_index=0,
        issued_at=datetime.now(UTC)))


async def test_two_issuance_transactions_racing_on_the_last_components_award_the_stack_once(
        backbone):
    """What two issuance instances do when one learner's last components arrive in both at
    once: each inserts its component and looks for completed stacks before committing."""
    catalog = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")
    engine = await scratch_engine(backbone)
    try:
        for round_no in range(5):
            key = f"race-{round_no}-{tag()}"
            both_inserted = asyncio.Barrier(2)

            async def instance(definition_id: str, provider: str, key: str = key,
                               barrier: asyncio.Barrier = both_inserted) -> int:
                async with engine.begin() as conn:
                    await component(conn, key, definition_id, provider)
                    await barrier.wait()  # neither has committed: the worst interleaving
                    return len(await stacks.completed(conn, catalog, key, {definition_id}))

            won = await asyncio.gather(instance(DATA, LAKESHORE), instance(SITE, OCSC))
            async with engine.connect() as conn:
                live = (await conn.execute(sa.select(sa.func.count()).select_from(
                    StackAward).where(StackAward.learner_key == key))).scalar_one()
            assert sorted(won) == [0, 1] and live == 1
    finally:
        await engine.dispose()


async def status(bb, provider: str, credential_id: str, action: str) -> None:
    async with bb.http("issuance", bb.api_keys[provider]) as client:
        r = await client.post(f"/v1/credentials/{credential_id}/status",
                              json={"action": action, "reason": "assessment irregularity"})
    assert r.status_code == 200, r.text


async def verdict(bb, credential_id: str) -> str:
    async with bb.http("registry", bb.operator_token) as client:  # private (ADR 9)
        return (await client.get(f"/v1/credentials/{credential_id}/verification")).json()[
            "status"]


async def stack_holder(bb, prefix: str) -> tuple[object, dict[str, dict]]:
    who = learner(f"{prefix}-{tag()}")
    await both_components_at_once(bb, who)
    creds = await credentials(bb, who.email, 3)
    by_title = {c["title"]: c for c in creds}
    return who, {"stack": by_title["Digital Skills for Construction Supervisors"],
                 "data": by_title["Data Analytics Fundamentals"],
                 "site": by_title["Construction Site Supervisor Readiness"]}


async def test_a_suspended_component_suspends_the_stack_and_a_revoked_one_revokes_it(backbone):
    _, held = await stack_holder(backbone, "stack-status")
    stack_id = held["stack"]["id"]
    await status(backbone, OCSC, held["site"]["id"], "suspend")
    assert await eventually(lambda: verdict(backbone, stack_id),
                            lambda s: s == "suspended") == "suspended"
    await status(backbone, OCSC, held["site"]["id"], "unsuspend")
    assert await eventually(lambda: verdict(backbone, stack_id),
                            lambda s: s == "valid") == "valid"
    await status(backbone, LAKESHORE, held["data"]["id"], "revoke")
    assert await eventually(lambda: verdict(backbone, stack_id),
                            lambda s: s == "revoked") == "revoked"


async def test_a_revoked_component_with_a_replacement_leaves_the_stack_valid(backbone):
    who, held = await stack_holder(backbone, "stack-replaced")
    await submit(backbone, LAKESHORE, result(LAKESHORE, DATA, who=who, score=95))
    await credentials(backbone, who.email, 4)  # the same component earned again
    await status(backbone, LAKESHORE, held["data"]["id"], "revoke")
    assert await eventually(lambda: verdict(backbone, held["data"]["id"]),
                            lambda s: s == "revoked") == "revoked"
    awarded = await backbone.scalar("issuance", "SELECT status FROM stack_awards WHERE "
                                    "credential_id = $1", uuid.UUID(held["stack"]["id"]))
    assert awarded == "active" and await verdict(backbone, held["stack"]["id"]) == "valid"
