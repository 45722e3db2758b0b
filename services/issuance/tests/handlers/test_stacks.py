"""A learner whose credentials complete a stack is awarded the stacked credential once, in
the transaction of the last component; the award then follows its components (ADR 12)."""

from __future__ import annotations

import uuid
from functools import partial

from microcred_issuance.issuing.handlers import on_decisions
from microcred_issuance.stacks.handlers import FollowStatus
from microcred_issuance.status.handlers import change_status
from microcred_shared import projection
from microcred_shared.contract import topics
from microcred_shared.contract.events import (
    AssessmentDecided,
    CredentialIssued,
    CredentialStatusChanged,
)

STACK = "ocsc-digital-skills-construction-supervisors"
DATA, SITE = "lakeshore-data-analytics-fundamentals", "ocsc-site-supervisor-readiness"
LAKESHORE, OCSC = "lakeshore-college", "ontario-construction-sector-council"


async def decide(world, *decisions: AssessmentDecided) -> None:
    await world.deliver(topics.DECISIONS, list(decisions),
                        partial(on_decisions, ctx=world.issuing), AssessmentDecided)


async def issued(world) -> dict[str, list[CredentialIssued]]:
    out: dict[str, list[CredentialIssued]] = {}
    for p in await world.published(topics.CREDENTIALS_ISSUED):
        assert isinstance(p.event, CredentialIssued)
        out.setdefault(p.event.definition_id or "", []).append(p.event)
    return out


async def change(world, credential_id, action, by):
    async with world.engine.begin() as conn:
        await change_status(conn, world.signer, credential_id, action, "for the test",
                            provider_id=by, followers=[FollowStatus(world.live, world.signer)],
                            traceparent=None)


async def statuses(world) -> dict[str, str]:
    rows = await world.rows("SELECT definition_id, status FROM issued_credentials "
                            "WHERE definition_id = :s", s=STACK)
    return {r.definition_id: r.status for r in rows}


async def awarded(world) -> tuple[CredentialIssued, dict[str, list[CredentialIssued]]]:
    who = uuid.uuid4().hex[:8]
    await decide(world, world.decided(DATA, who=who, score=88))
    assert STACK not in await issued(world)  # one component is not a stack
    await decide(world, world.decided(SITE, who=who))
    by_definition = await issued(world)
    [stack] = by_definition[STACK]
    return stack, by_definition


async def test_the_last_component_awards_the_stack_signed_by_its_owner_naming_both_parts(
        world):
    stack, by_definition = await awarded(world)
    components = {f"{world.base_url}/v1/credentials/{c.credential_id}"
                  for d in (DATA, SITE) for c in by_definition[d]}
    assert stack.provider_id == OCSC
    assert stack.learner_key == by_definition[DATA][0].learner_key
    assert set(stack.credential["components"]) == components
    assert stack.credential["issuer"]["id"] == f"did:web:registry.microcred.example:issuers:{OCSC}"
    assert await world.scalar("SELECT count(*) FROM stack_awards") == 1


async def test_both_components_in_one_batch_award_the_stack_once(world):
    who = uuid.uuid4().hex[:8]
    await decide(world, world.decided(SITE, who=who), world.decided(DATA, who=who, score=75))
    assert len((await issued(world))[STACK]) == 1
    # Another credential of a component later on does not award the stack again.
    await decide(world, world.decided(DATA, who=who, score=95))
    assert len((await issued(world))[STACK]) == 1
    assert await world.scalar("SELECT count(*) FROM stack_awards") == 1


async def test_components_of_two_learners_do_not_make_a_stack(world):
    await decide(world, world.decided(DATA, score=88), world.decided(SITE))
    assert STACK not in await issued(world)


async def test_a_revoked_component_revokes_the_stack(world):
    _, by_definition = await awarded(world)
    await change(world, by_definition[DATA][0].credential_id, "revoke", LAKESHORE)
    assert await statuses(world) == {STACK: "revoked"}
    changes = [p.event for p in await world.published(topics.CREDENTIAL_STATUS)]
    assert [(c.status, c.reason) for c in changes if c.provider_id == OCSC] == [
        ("revoked", f"component credential {by_definition[DATA][0].credential_id} was revoked")]
    assert await world.scalar("SELECT status FROM stack_awards") == "revoked"


async def test_a_suspended_component_suspends_the_stack_until_it_is_reinstated(world):
    _, by_definition = await awarded(world)
    site = by_definition[SITE][0].credential_id
    await change(world, site, "suspend", OCSC)
    assert await statuses(world) == {STACK: "suspended"}
    await change(world, site, "unsuspend", OCSC)
    assert await statuses(world) == {STACK: "active"}


async def test_a_stack_its_issuer_suspended_is_not_lifted_by_a_component(world):
    stack, by_definition = await awarded(world)
    site = by_definition[SITE][0].credential_id
    await change(world, stack.credential_id, "suspend", OCSC)  # the issuer's own decision
    await change(world, site, "suspend", OCSC)
    await change(world, site, "unsuspend", OCSC)
    assert await statuses(world) == {STACK: "suspended"}
    assert await world.scalar("SELECT held_by_components FROM stack_awards") is False


async def test_a_stack_that_cannot_be_suspended_stands_while_a_component_is_suspended(world):
    """ADR 8: a stack definition not marked suspendable issues credentials with no
    suspension entry; its component's suspension leaves it valid (revocation still
    reaches it)."""
    stack_def = world.seed.definition(STACK)
    async with world.engine.begin() as conn:
        await projection.put_definition(conn, stack_def.model_copy(
            update={"version": stack_def.version + 1, "suspendable": False}))
    await world.live.refresh(force=True)
    stack, by_definition = await awarded(world)
    assert isinstance(stack.credential["credentialStatus"], dict)
    site = by_definition[SITE][0].credential_id
    await change(world, site, "suspend", OCSC)
    assert await statuses(world) == {STACK: "active"}
    assert [c.event.credential_id for c in await world.published(topics.CREDENTIAL_STATUS)
            ] == [site]  # nothing announced for the stack
    await change(world, by_definition[DATA][0].credential_id, "revoke", LAKESHORE)
    assert await statuses(world) == {STACK: "revoked"}


async def test_another_credential_of_the_same_definition_stands_in_for_a_revoked_one(world):
    who = uuid.uuid4().hex[:8]
    await decide(world, world.decided(DATA, who=who, score=60))
    await decide(world, world.decided(DATA, who=who, score=90))
    await decide(world, world.decided(SITE, who=who))
    first = (await issued(world))[DATA][0].credential_id
    await change(world, first, "revoke", LAKESHORE)
    assert await statuses(world) == {STACK: "active"}
    changes = [p.event for p in await world.published(topics.CREDENTIAL_STATUS)]
    assert all(isinstance(c, CredentialStatusChanged) and c.provider_id == LAKESHORE
               for c in changes)
