"""Who reads a stored credential, against a real database: the rule (wallet.domain.may_read)
applied to what the registry holds, verification of our own URLs under the same rule, and
the employer keys the registry projects from notify (ADR 9)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from microcred_registry.employers.handlers import on_employer_published
from microcred_registry.employers.keys import EmployerKeys, on_employer_keys
from microcred_registry.verification import handlers as verification
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import ANYONE, Session, Viewer
from microcred_registry.wallet.handlers import Wallet
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialIssued
from microcred_shared.contract.events_employers import EmployerApiKeyChanged, EmployerPublished
from microcred_shared.problems import Problem

BASE = "https://registry.test"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
ADA = Session("learner-ada", T0 + timedelta(days=1))
CID = uuid.UUID(int=1)


@pytest.fixture
async def wallet(db: Any) -> Wallet:
    await db.register(CredentialIssued(
        credential_id=CID, provider_id="lakeshore", learner_key=ADA.learner_key,
        title="Data analysis", issued_at=T0,
        credential={"id": f"urn:uuid:{CID}", "name": "Data analysis"}))
    await db.deliver(topics.EMPLOYERS, on_employer_published, EmployerPublished, [
        EmployerPublished(employer_id="acme", organisation="Acme", status="approved",
                          published_at=T0)])
    return Wallet(db.engine, BASE, db.wake)


async def readable(db: Any, viewer: Viewer) -> bool:
    """Whether `viewer` may read CID; the one-statement read of the hot paths (its JSON,
    verification and page) answers the same as the ORM one."""
    async with db.engine.connect() as conn:
        found = await sharing.readable(conn, CID, viewer) is not None
    assert (await sharing.read_by_id(db.engine, CID, viewer) is not None) == found
    return found


async def test_a_private_credential_is_read_by_its_holder_issuer_and_operator_only(
        db: Any, wallet: Wallet) -> None:
    assert not await readable(db, ANYONE)
    assert await readable(db, Viewer(learner_key=ADA.learner_key))
    assert await readable(db, Viewer(provider_id="lakeshore"))
    assert not await readable(db, Viewer(provider_id="coast-mountain"))
    assert await readable(db, Viewer(operator=True))
    assert not await readable(db, Viewer(employer_id="acme"))
    await wallet.share_with(ADA, CID, "acme")
    assert await readable(db, Viewer(employer_id="acme"))
    await wallet.stop_sharing(ADA, CID, "acme")
    assert not await readable(db, Viewer(employer_id="acme"))
    async with db.engine.connect() as conn:  # no such credential: the same None
        assert await sharing.readable(conn, uuid.UUID(int=99), Viewer(operator=True)) is None


async def test_verifying_our_own_url_follows_the_same_rule_and_a_link_while_it_lives(
        db: Any, wallet: Wallet) -> None:
    own = f"{BASE}/v1/credentials/{CID}"
    for viewer in (ANYONE, Viewer(employer_id="acme")):
        with pytest.raises(Problem) as hidden:
            await verification.verify_url(db.engine, BASE, own, viewer)
        assert (hidden.value.status, hidden.value.kind) == (404, "not-found")
        with pytest.raises(Problem) as by_id:
            await verification.verify_stored(db.engine, BASE, CID, viewer)
        assert by_id.value.status == 404
    mine = await verification.verify_url(db.engine, BASE, own + "?format=json",
                                         Viewer(learner_key=ADA.learner_key))
    assert mine["verified"] is False  # read (this test document carries no proof)

    _, link = await wallet.new_link(ADA, CID, None, None)
    assert (await verification.verify_url(db.engine, BASE, link["url"]))["checks"]
    await wallet.revoke_link(ADA, CID, uuid.UUID(link["id"]))
    with pytest.raises(Problem) as gone:
        await verification.verify_url(db.engine, BASE, link["url"])
    assert (gone.value.status, gone.value.kind) == (410, "share-link-gone")
    # The document itself, from whoever holds it, needs no access to ours.
    assert "checks" in await verification.verify_document(
        db.engine, BASE, {"id": f"urn:uuid:{CID}"})


def key_event(secret: str, *, revoked: bool = False, employer: str = "acme",
              ) -> EmployerApiKeyChanged:
    return EmployerApiKeyChanged(
        key_id="k1", employer_id=employer, secret_sha256=hashlib.sha256(
            secret.encode()).hexdigest(), created_at=T0,
        revoked_at=T0 + timedelta(hours=1) if revoked else None)


async def test_an_employer_key_works_while_live_and_its_employer_approved(
        db: Any, wallet: Wallet) -> None:
    await db.deliver(topics.EMPLOYER_API_KEYS, on_employer_keys, EmployerApiKeyChanged,
                     [key_event("s3cret")])
    assert await EmployerKeys(db.engine, ttl=0).employer_for("mce_k1.s3cret") == "acme"
    assert await EmployerKeys(db.engine, ttl=0).employer_for("mce_k1.wrong") is None
    assert await EmployerKeys(db.engine, ttl=0).employer_for("mcp_k1.s3cret") is None

    await db.deliver(topics.EMPLOYERS, on_employer_published, EmployerPublished, [
        EmployerPublished(employer_id="acme", organisation="Acme", status="suspended",
                          published_at=T0 + timedelta(hours=1))])
    assert await EmployerKeys(db.engine, ttl=0).employer_for("mce_k1.s3cret") is None
    await db.deliver(topics.EMPLOYERS, on_employer_published, EmployerPublished, [
        EmployerPublished(employer_id="acme", organisation="Acme", status="approved",
                          published_at=T0 + timedelta(hours=2))])
    assert await EmployerKeys(db.engine, ttl=0).employer_for("mce_k1.s3cret") == "acme"

    # Revoked, the key stays revoked even when its minting is replayed (compacted topic).
    await db.deliver(topics.EMPLOYER_API_KEYS, on_employer_keys, EmployerApiKeyChanged,
                     [key_event("s3cret", revoked=True)])
    await db.deliver(topics.EMPLOYER_API_KEYS, on_employer_keys, EmployerApiKeyChanged,
                     [key_event("s3cret")])
    assert await EmployerKeys(db.engine, ttl=0).employer_for("mce_k1.s3cret") is None
