"""A provider revokes, suspends and reinstates its own credentials: the bit in its signed
status list flips, the list is re-published, the change is announced; nobody else may. Only
a credential of a suspendable definition (ADR 8) can be suspended."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial

import pytest
import sqlalchemy as sa

from microcred_issuance.issuing.handlers import on_decisions
from microcred_issuance.status.domain import InvalidTransition, NotSuspendable
from microcred_issuance.status.handlers import (
    NotFound,
    NotTheIssuer,
    change_status,
    publish_status_lists,
    record_refusal,
)
from microcred_shared.contract import topics
from microcred_shared.contract.events import (
    AssessmentDecided,
    CredentialIssued,
    CredentialStatusChanged,
    StatusListPublished,
)
from microcred_shared.contract.events_providers import AuditRecorded
from microcred_shared.vc import statuslist

SAFETY = "lakeshore-workplace-safety"  # not suspendable: the default
SITE = "ocsc-site-supervisor-readiness"  # suspendable (deploy/seed)
LAKESHORE, OCSC = "lakeshore-college", "ontario-construction-sector-council"


async def issued(world, definition: str = SAFETY) -> CredentialIssued:
    await world.deliver(topics.DECISIONS, [world.decided(definition)],
                        partial(on_decisions, ctx=world.issuing), AssessmentDecided)
    [event] = [p.event for p in await world.published(topics.CREDENTIALS_ISSUED)]
    assert isinstance(event, CredentialIssued)
    async with world.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM outbox"))
    return event


async def change(world, credential_id, action, *, by=LAKESHORE, followers=()):
    async with world.engine.begin() as conn:
        return await change_status(conn, world.signer, credential_id, action,
                                   f"{action} for the test", provider_id=by,
                                   followers=list(followers), traceparent=None)


def bit(list_event: StatusListPublished, index: int) -> bool:
    encoded = list_event.credential["credentialSubject"]["encodedList"]
    return statuslist.get_bit(statuslist.decode_list(encoded), index)


async def test_a_revocation_sets_the_bit_in_the_re_signed_list_and_is_announced(world):
    cred = await issued(world)
    changed = await change(world, cred.credential_id, "revoke")
    assert (changed.before, changed.status) == ("active", "revoked")
    out = await world.published()
    assert [p.topic for p in out] == [topics.STATUS_LISTS, topics.CREDENTIAL_STATUS]
    listed, announced = out[0].event, out[1].event
    assert isinstance(listed, StatusListPublished) and listed.purpose == "revocation"
    assert listed.url == cred.credential["credentialStatus"]["statusListCredential"]
    assert bit(listed, 0) is True
    assert isinstance(announced, CredentialStatusChanged)
    assert (announced.credential_id, announced.status, announced.action) == (
        cred.credential_id, "revoked", "revoke")
    assert await world.scalar("SELECT status FROM issued_credentials") == "revoked"


async def test_a_suspension_is_lifted_by_unsuspending_and_the_bit_is_cleared(world):
    cred = await issued(world, SITE)
    await change(world, cred.credential_id, "suspend", by=OCSC)
    await change(world, cred.credential_id, "unsuspend", by=OCSC)
    lists = [p.event for p in await world.published(topics.STATUS_LISTS)]
    assert [e.purpose for e in lists] == ["suspension", "suspension"]
    assert [bit(e, 0) for e in lists] == [True, False]
    assert [e.version for e in lists] == [1, 2]
    assert await world.scalar("SELECT status FROM issued_credentials") == "active"


async def test_a_revoked_credential_cannot_be_suspended_or_reinstated(world):
    cred = await issued(world, SITE)
    await change(world, cred.credential_id, "revoke", by=OCSC)
    for action in ("suspend", "unsuspend", "revoke"):
        with pytest.raises(InvalidTransition, match="that is revoked"):
            await change(world, cred.credential_id, action, by=OCSC)
    assert len(await world.published(topics.CREDENTIAL_STATUS)) == 1


async def test_a_credential_without_a_suspension_entry_cannot_be_suspended_but_is_revoked(
        world):
    cred = await issued(world)
    entry = cred.credential["credentialStatus"]
    assert isinstance(entry, dict) and entry["statusPurpose"] == "revocation"
    with pytest.raises(NotSuspendable, match="cannot be suspended; revoke it instead"):
        await change(world, cred.credential_id, "suspend")
    assert await world.published() == []  # no bit, no list, no announcement
    assert await world.scalar("SELECT status FROM issued_credentials") == "active"
    assert (await change(world, cred.credential_id, "revoke")).status == "revoked"


async def test_a_suspendable_credential_carries_both_entries_and_the_register_knows_it(world):
    cred = await issued(world, SITE)
    assert [e["statusPurpose"] for e in cred.credential["credentialStatus"]] == [
        "revocation", "suspension"]
    assert await world.scalar("SELECT suspendable FROM issued_credentials") is True


async def test_credentials_issued_before_the_flag_keep_both_entries_and_stay_suspendable(
        handler_db):
    """Migration 5 on a database that had issued credentials: they carry two entries, so
    they stay suspendable; rows inserted afterwards without the column are not."""
    from microcred_issuance.migrations import MIGRATIONS

    engine = await handler_db(MIGRATIONS[:4])
    async with engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE issued_credentials DROP COLUMN suspendable"))
        await conn.execute(sa.text(
            "INSERT INTO issued_credentials (credential_id, provider_id, learner_key, key_id, "
            "status_index, status, issued_at) VALUES (:id, 'p', 'k', 'key', 0, 'active', "
            "now())"), {"id": uuid.uuid4()})
    from microcred_shared.db import migrate

    await migrate(engine, MIGRATIONS)
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO issued_credentials (credential_id, provider_id, learner_key, key_id, "
            "status_index, status, issued_at) VALUES (:id, 'p', 'k', 'key', 1, 'active', "
            "now())"), {"id": uuid.uuid4()})
        flags = (await conn.execute(sa.text(
            "SELECT suspendable FROM issued_credentials ORDER BY status_index"))).scalars()
        assert list(flags) == [True, False]


async def test_only_the_issuing_provider_may_change_a_status(world):
    cred = await issued(world)
    with pytest.raises(NotTheIssuer) as caught:
        await change(world, cred.credential_id, "revoke", by="coast-mountain-university")
    assert caught.value.issuer == LAKESHORE
    assert await world.scalar("SELECT status FROM issued_credentials") == "active"
    await record_refusal(world.engine, cred.credential_id, "revoke",
                         provider_id="coast-mountain-university", issuer=LAKESHORE,
                         traceparent=None)
    [audit] = [p.event for p in await world.published()]
    assert isinstance(audit, AuditRecorded)
    assert audit.actor == "provider:coast-mountain-university"
    assert audit.action == "credential.revoke"
    with pytest.raises(NotFound):
        await change(world, uuid.uuid4(), "revoke")


async def test_followers_move_in_the_same_transaction_and_roll_back_with_it(world):
    cred = await issued(world, SITE)
    seen = []

    async def follower(conn, changed, traceparent):
        seen.append(changed.status)
        raise RuntimeError("a follower failed")

    with pytest.raises(RuntimeError):
        await change(world, cred.credential_id, "suspend", by=OCSC, followers=[follower])
    assert seen == ["suspended"]
    assert await world.scalar("SELECT status FROM issued_credentials") == "active"
    assert await world.published() == []


async def test_lists_not_re_signed_for_a_while_are_refreshed_and_fresh_ones_left_alone(world):
    await issued(world)
    assert await publish_status_lists(world.engine, world.signer,
                                      older_than=timedelta(days=1)) == 0
    async with world.engine.begin() as conn:
        await conn.execute(sa.text(
            "UPDATE status_lists SET updated_at = now() - interval '20 days' "
            "WHERE purpose = 'revocation'"))
    count = await publish_status_lists(world.engine, world.signer,
                                       older_than=timedelta(days=15))
    assert count == 1
    [event] = [p.event for p in await world.published(topics.STATUS_LISTS)]
    assert event.purpose == "revocation"
    assert await world.scalar("SELECT count(*) FROM status_lists "
                              "WHERE updated_at < now() - interval '1 day'") == 0
