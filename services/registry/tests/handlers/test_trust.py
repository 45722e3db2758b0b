"""The trust list's projection (ADR 26) against a real PostgreSQL: provider records as the
registry's subscription to `microcred.providers.v1` applies them, and what the list, the
federation fetch and the credential page then say."""

from __future__ import annotations

from datetime import UTC, datetime

from microcred_registry.trust import domain, handlers
from microcred_shared import projection
from microcred_shared.catalog import Provider
from microcred_shared.contract import topics
from microcred_shared.contract.events_providers import ProviderPublished
from microcred_testkit.providers import provider_doc

BASE = "https://registry.test"


def published(pid: str, version: int, **changes: object) -> ProviderPublished:
    doc = {**provider_doc(pid), "version": version, **changes}
    return ProviderPublished(provider=Provider.model_validate(doc),
                             published_at=datetime.now(UTC))


async def deliver(db, *events: ProviderPublished) -> None:
    await db.deliver(topics.PROVIDERS, projection.on_providers, ProviderPublished, list(events))


async def listed(db) -> list[str]:
    async with db.engine.connect() as conn:
        known = await handlers.providers(conn)
    return list(domain.dcc_registry(known.all, BASE, created=known.created,
                                    updated=known.updated)["registry"])


async def test_onboarding_lists_suspension_removes_and_reactivation_lists_again(db):
    did = domain.issuer_did(BASE, "acme")
    await deliver(db, published("acme", 1))
    assert await listed(db) == [did]
    await deliver(db, published("acme", 2, status="suspended", status_reason="QA review"))
    assert await listed(db) == []
    async with db.engine.connect() as conn:
        assert not await handlers.registered_issuer(conn, did, BASE)
    await deliver(db, published("acme", 3))
    assert await listed(db) == [did]
    async with db.engine.connect() as conn:
        assert await handlers.registered_issuer(conn, did, BASE)
        # A credential issued before ADR 22 names the profile URL: the page counts it too.
        assert await handlers.registered_issuer(conn, f"{BASE}/issuers/acme", BASE)
        assert not await handlers.registered_issuer(conn, "did:web:elsewhere:issuers:acme",
                                                    BASE)


async def test_a_replayed_older_record_never_puts_a_suspended_provider_back(db):
    await deliver(db, published("acme", 1), published("acme", 2, status="suspended"))
    await deliver(db, published("acme", 1))  # the compacted topic read again, out of order
    assert await listed(db) == []


async def test_an_adverse_quality_assurance_outcome_takes_an_active_provider_off(db):
    qa = {**provider_doc("acme")["quality_assurance"], "status": "Withdrawn"}
    await deliver(db, published("acme", 1), published("zed", 1, quality_assurance=qa))
    assert await listed(db) == [domain.issuer_did(BASE, "acme")]


async def test_a_listed_issuer_without_published_keys_has_an_empty_key_set(db):
    await deliver(db, published("acme", 1))
    async with db.engine.connect() as conn:
        assert await handlers.issuer_jwks(conn, "acme", BASE) == []


async def test_the_credential_page_sees_a_suspension_at_once_though_it_keeps_the_list_in_memory(
        db):
    """The page asks whether the issuer is listed with the providers' version read in the
    credential's own statement (wallet.sharing.read_by_id): a suspension is a new version,
    so the very next page sees it."""
    import uuid

    import sqlalchemy as sa

    from microcred_registry.wallet import sharing
    from microcred_registry.wallet.domain import Viewer

    cid, did = uuid.UUID(int=5), domain.issuer_did(BASE, "acme")
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO credentials (credential_id, provider_id, learner_key, title, document, "
            "status, issued_at, registered_at) VALUES (:c, 'acme', 'k', 't', '{}', 'active', "
            "now(), now())"), {"c": cid})

    async def listed_on_page() -> bool:
        stored = await sharing.read_by_id(db.engine, cid, Viewer(operator=True),
                                          for_verification=True)
        assert stored is not None
        return await handlers.registered_issuer_at(db.engine, did, BASE,
                                                   stored.versions["providers"])

    await deliver(db, published("acme", 1))
    assert await listed_on_page() and await listed_on_page()
    await deliver(db, published("acme", 2, status="suspended", status_reason="QA review"))
    assert not await listed_on_page()
    await deliver(db, published("acme", 3))
    assert await listed_on_page()
