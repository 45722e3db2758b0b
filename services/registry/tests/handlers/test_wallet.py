"""The wallet's use cases against a real database: who sees a credential, direct shares
with approved employers, share links, sign-in; each change others must learn of is in the
outbox (what the relay would publish), and nothing else is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from microcred_registry.employers.handlers import on_employer_published, shareable_employers
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import Session, SignInPolicy
from microcred_registry.wallet.handlers import UnknownEmployer, Wallet
from microcred_registry.wallet.signin import SignIn
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialIssued, learner_key
from microcred_shared.contract.events_employers import EmployerPublished
from microcred_shared.problems import Problem

BASE = "https://registry.test"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
EMAIL = "ada@learners.example"
ADA = Session(learner_key(EMAIL), T0 + timedelta(days=1))
CID = uuid.UUID(int=1)


@pytest.fixture
async def wallet(db: Any) -> Wallet:
    """Ada holds one credential; Acme is approved, Initech only registered (pending)."""
    await db.register(CredentialIssued(
        credential_id=CID, provider_id="lakeshore", learner_key=ADA.learner_key,
        title="Data analysis", issued_at=T0,
        credential={"id": f"urn:uuid:{CID}", "name": "Data analysis"}))
    await employers(db, ("acme", "Acme", "approved"), ("initech", "Initech", "pending"))
    await db.rows("DELETE FROM outbox RETURNING id")  # the registration: not under test here
    return Wallet(db.engine, BASE, db.wake)


async def employers(db: Any, *entries: tuple[str, str, str], at: datetime = T0) -> None:
    await db.deliver(topics.EMPLOYERS, on_employer_published, EmployerPublished, [
        EmployerPublished(employer_id=e, organisation=name, status=status,
                          published_at=at) for e, name, status in entries])


async def visibility_events(db: Any) -> list[dict[str, Any]]:
    return [o["payload"] for o in await db.published()
            if o["topic"] == topics.CREDENTIAL_VISIBILITY]


async def test_a_credential_is_private_until_its_holder_says_otherwise(wallet: Wallet) -> None:
    mine = await wallet.mine(ADA)
    assert [(c["id"], c["visibility"], c["shared_with"]) for c in mine["credentials"]] == [
        (str(CID), "private", [])]


async def test_changing_visibility_is_published_once_and_only_when_it_changes(
        wallet: Wallet, db: Any) -> None:
    changed = await wallet.set_visibility(ADA, CID, "public")
    await wallet.set_visibility(ADA, CID, "public")

    assert changed.state["visibility"] == "public"
    [event] = await visibility_events(db)
    assert (event["visibility"], event["learner_key"]) == ("public", ADA.learner_key)
    assert db.wakes == 2  # the relay is told after each commit


async def test_someone_elses_credential_looks_like_a_missing_one(wallet: Wallet, db: Any) -> None:
    eve = Session("someone-else", ADA.expires_at)
    with pytest.raises(Problem) as raised:
        await wallet.set_visibility(eve, CID, "public")
    assert (raised.value.status, raised.value.kind) == (404, "not-found")
    assert await visibility_events(db) == []


async def test_a_credential_is_shared_directly_only_with_an_approved_employer(
        wallet: Wallet, db: Any) -> None:
    with pytest.raises(UnknownEmployer):
        await wallet.share_with(ADA, CID, "initech")
    with pytest.raises(UnknownEmployer):
        await wallet.share_with(ADA, CID, "nobody")
    assert await visibility_events(db) == []

    changed = await wallet.share_with(ADA, CID, "acme")
    assert changed.state["shared_with"] == ["acme"]
    [event] = await visibility_events(db)
    assert (event["visibility"], event["shared_with"]) == ("private", ["acme"])
    detail = await wallet.credential(ADA, CID)
    assert [(s["employer_id"], s["name"], s["status"]) for s in detail["employer_shares"]] == [
        ("acme", "Acme", "approved")]


async def test_a_share_with_an_employer_suspended_since_can_always_be_stopped(
        wallet: Wallet, db: Any) -> None:
    await wallet.share_with(ADA, CID, "acme")
    await employers(db, ("acme", "Acme", "suspended"), at=T0 + timedelta(hours=1))
    # Sharing again with one already shared with changes nothing (and is not refused).
    await wallet.share_with(ADA, CID, "acme")

    changed = await wallet.stop_sharing(ADA, CID, "acme")
    assert changed.state["shared_with"] == []
    assert [e["shared_with"] for e in await visibility_events(db)] == [["acme"], []]


async def test_a_change_carries_the_signed_document_only_when_it_lets_an_employer_see_it(
        wallet: Wallet, db: Any) -> None:
    """notify's employer feed takes the document from the change that first shows the
    credential to an employer, and keeps none before (ADR 10)."""
    await wallet.set_visibility(ADA, CID, "link")
    await wallet.set_visibility(ADA, CID, "employers")
    await wallet.share_with(ADA, CID, "acme")
    await wallet.set_visibility(ADA, CID, "private")  # still shared with Acme
    await wallet.stop_sharing(ADA, CID, "acme")

    document = {"id": f"urn:uuid:{CID}", "name": "Data analysis"}
    assert [(e["visibility"], e["shared_with"], e.get("credential"))
            for e in await visibility_events(db)] == [
        ("link", [], None), ("employers", [], document), ("employers", ["acme"], document),
        ("private", ["acme"], document), ("private", [], None)]


async def test_a_malformed_employer_id_is_refused_before_anything_is_read(
        wallet: Wallet) -> None:
    with pytest.raises(Problem) as raised:
        await wallet.stop_sharing(ADA, CID, "Not An Id!")
    assert (raised.value.status, raised.value.title) == (400, "Invalid employer id")


async def test_a_new_share_link_opens_a_private_credential_to_links(
        wallet: Wallet, db: Any) -> None:
    changed, link = await wallet.new_link(ADA, CID, expires_in_days=7)

    assert changed.state["visibility"] == "link" and link["state"] == "active"
    token = link["url"].rsplit("/", 1)[1]
    async with db.engine.connect() as conn:
        opened = await sharing.credential_for_link(conn, token)
    assert opened is not None and opened.credential_id == CID
    assert [e["visibility"] for e in await visibility_events(db)] == ["link"]
    # The token is shown once: only its digest is stored.
    assert await db.rows("SELECT 1 FROM credential_share_links WHERE token_sha256 = :t",
                         t=token) == []


async def test_making_the_credential_private_withdraws_every_link(
        wallet: Wallet, db: Any) -> None:
    _, link = await wallet.new_link(ADA, CID)
    await wallet.set_visibility(ADA, CID, "private")

    async with db.engine.connect() as conn:
        assert await sharing.credential_for_link(conn, link["url"].rsplit("/", 1)[1]) is None


async def test_a_revoked_link_stops_working_and_a_second_revocation_says_so(
        wallet: Wallet, db: Any) -> None:
    _, link = await wallet.new_link(ADA, CID)
    share_id = uuid.UUID(link["id"])

    assert (await wallet.revoke_link(ADA, CID, share_id))[1] is True
    assert (await wallet.revoke_link(ADA, CID, share_id))[1] is False
    assert [s["state"] for s in await wallet.links(ADA, CID)] == ["revoked"]
    async with db.engine.connect() as conn:
        assert await sharing.credential_for_link(conn, link["url"].rsplit("/", 1)[1]) is None


async def test_a_link_expiring_in_the_past_is_refused(wallet: Wallet, db: Any) -> None:
    with pytest.raises(Problem) as raised:
        await wallet.new_link(ADA, CID, expires_at=T0 - timedelta(days=1))
    assert (raised.value.status, raised.value.title) == (400, "Invalid expiry")
    assert await db.rows("SELECT 1 FROM credential_share_links") == []


async def test_the_export_holds_every_signed_credential(wallet: Wallet) -> None:
    name, bundle = await wallet.export(ADA)
    assert name.startswith("microcred-credentials-") and name.endswith(".json")
    assert bundle["credentials"] == [{"id": f"urn:uuid:{CID}", "name": "Data analysis"}]


async def test_the_public_profile_keeps_its_address_and_shows_public_credentials_only(
        wallet: Wallet, db: Any) -> None:
    url = await wallet.profile_url(ADA)
    assert await wallet.profile_url(ADA) == url
    slug = url.rsplit("/", 1)[1]
    async with db.engine.connect() as conn:
        assert await sharing.public_profile(conn, slug) == []
        await wallet.set_visibility(ADA, CID, "public")
        assert [r.credential_id for r in await sharing.public_profile(conn, slug)] == [CID]
        assert await sharing.public_profile(conn, "no-such-slug") is None


async def test_only_approved_employers_are_offered_by_name(wallet: Wallet, db: Any) -> None:
    await employers(db, ("zeta", "aardvark ltd", "approved"))
    assert [e["id"] for e in await wallet.shareable_employers()] == ["zeta", "acme"]
    async with db.engine.connect() as conn:
        assert [r.employer_id for r in await shareable_employers(conn)] == ["zeta", "acme"]


# --- sign-in ------------------------------------------------------------------------------


def signin(db: Any, *, limit: int = 5) -> SignIn:
    return SignIn(db.engine, BASE, SignInPolicy(
        link_ttl=timedelta(minutes=15), session_ttl=timedelta(hours=8), rate_limit=limit,
        rate_window=timedelta(minutes=15)), db.wake)


async def test_a_holder_gets_a_one_time_link_that_opens_one_session(
        wallet: Wallet, db: Any) -> None:
    service = signin(db)
    await service.request(EMAIL, "fr")

    [mail] = [o["payload"] for o in await db.published() if o["topic"] == topics.LEARNER_SIGNIN]
    assert (mail["email"], mail["language"]) == (EMAIL, "fr")
    token = mail["link"].rsplit("/", 1)[1].removesuffix("?lang=fr")
    # The link opens the pages in the language the learner asked in.
    assert mail["link"] == f"{BASE}/learner/sign-in/{token}?lang=fr"
    assert await service.usable(token)

    secret, session = await service.exchange(token)
    assert session.learner_key == ADA.learner_key
    assert (await service.session(secret)) is not None
    with pytest.raises(Problem) as raised:
        await service.exchange(token)
    assert raised.value.status == 410

    await service.end(secret)
    assert await service.session(secret) is None


async def test_an_address_without_credentials_gets_no_mail_and_the_same_answer(
        wallet: Wallet, db: Any) -> None:
    await signin(db).request("nobody@learners.example", "en")
    assert [o for o in await db.published() if o["topic"] == topics.LEARNER_SIGNIN] == []


async def test_too_many_links_for_one_address_are_refused_known_or_not(
        wallet: Wallet, db: Any) -> None:
    service = signin(db, limit=2)
    for address in (EMAIL, "nobody@learners.example"):
        await service.request(address, "en")
        await service.request(address, "en")
        with pytest.raises(Problem) as raised:
            await service.request(address, "en")
        assert raised.value.status == 429
    assert len([o for o in await db.published() if o["topic"] == topics.LEARNER_SIGNIN]) == 2
