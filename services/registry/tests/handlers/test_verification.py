"""Verification use cases against a real database: what cannot be fetched is a 422 problem
in words, and a stored credential is checked against the registry's own projections."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from microcred_registry.verification import handlers
from microcred_shared.problems import Problem

BASE = "https://registry.test"


async def test_a_url_that_is_not_https_is_refused_without_fetching(db: Any) -> None:
    with pytest.raises(Problem) as raised:
        await handlers.verify_url(db.engine, BASE, "http://issuers.example/c/1")
    assert (raised.value.status, raised.value.kind) == (422, "unfetchable")
    assert "only https" in raised.value.detail


async def test_one_of_our_own_urls_is_read_from_the_database_not_fetched(db: Any) -> None:
    with pytest.raises(Problem) as raised:
        await handlers.verify_url(db.engine, BASE, f"{BASE}/v1/credentials/{uuid.UUID(int=7)}")
    assert raised.value.status == 404


async def test_an_unsigned_document_does_not_verify_and_says_why(db: Any) -> None:
    result = await handlers.verify_document(db.engine, BASE, {"id": "urn:uuid:x"})
    assert result["verified"] is False and result["problems"]


# --- issuers as did:web (ADR 22), and credentials issued before --------------------------

DID = "did:web:registry.test:issuers:lakeshore"
OLD_ID = f"{BASE}/issuers/lakeshore"
SEED = bytes([9] * 32)


async def _publish_issuer_and_lists(db: Any, revoked: int | None = None) -> None:
    """The registry's projections as issuance fills them: the provider's key, and its
    status lists signed by its did:web."""
    from datetime import UTC, datetime

    from microcred_registry.credentials import handlers as credentials
    from microcred_shared.contract import topics
    from microcred_shared.contract.events import (
        IssuerKeysPublished,
        IssuerPublicKey,
        StatusListPublished,
    )
    from microcred_shared.vc import keys, proofs, statuslist

    private = keys.private_key_from_seed(SEED)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await db.deliver(topics.ISSUER_KEYS, credentials.on_issuer_keys, IssuerKeysPublished, [
        IssuerKeysPublished(provider_id="lakeshore", profile={"id": DID, "name": "Lakeshore"},
                            keys=[IssuerPublicKey(key_id="key-1", status="active",
                                                  public_multikey=keys.multikey_encode(
                                                      private.public_key()), created_at=t0)],
                            published_at=t0)])
    lists = []
    for purpose in statuslist.PURPOSES:
        bits = statuslist.new_list()
        if revoked is not None and purpose == "revocation":
            statuslist.set_bit(bits, revoked)
        url = f"{BASE}/status/lakeshore/{purpose}/0"
        signed = proofs.sign(statuslist.status_list_credential(
            url=url, issuer=DID, purpose=purpose, encoded_list=statuslist.encode_list(bits),
            valid_from=t0), private, f"{DID}#key-1", created=t0)
        lists.append(StatusListPublished(url=url, provider_id="lakeshore", purpose=purpose,
                                         version=1, credential=signed, published_at=t0))
    await db.deliver(topics.STATUS_LISTS, credentials.on_status_list, StatusListPublished,
                     lists)


def _credential(issuer: str, index: int, context: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    from microcred_shared.vc import keys, proofs, statuslist
    from microcred_testkit.vc_examples import example_credential

    doc = example_credential(issuer_id=issuer, credential_status=[
        statuslist.status_entry(status_list_credential=f"{BASE}/status/lakeshore/{p}/0",
                                index=index, purpose=p) for p in statuslist.PURPOSES])
    doc["@context"][-1] = context
    return proofs.sign(doc, keys.private_key_from_seed(SEED), f"{issuer}#key-1",
                       created=datetime(2026, 6, 30, tzinfo=UTC))


async def test_a_did_web_credential_naming_our_published_context_verifies_from_our_database(
        db: Any) -> None:
    await _publish_issuer_and_lists(db, revoked=4)
    fresh = await handlers.verify_document(
        db.engine, BASE, _credential(DID, 3, f"{BASE}/contexts/microcred/v1"))
    assert fresh["verified"], fresh["problems"]
    revoked = await handlers.verify_document(
        db.engine, BASE, _credential(DID, 4, f"{BASE}/contexts/microcred/v1"))
    assert revoked["status"] == "revoked"


async def test_a_credential_issued_before_did_web_still_verifies_and_sees_its_status(
        db: Any) -> None:
    """https issuer and key id, the w3id context; its status lists are now signed by the
    issuer's did:web, whose key its profile URL lists too."""
    await _publish_issuer_and_lists(db, revoked=6)
    old = await handlers.verify_document(
        db.engine, BASE, _credential(OLD_ID, 5, "https://w3id.org/microcred/v1"))
    assert old["verified"] and old["status"] == "valid", old["problems"]
    old_revoked = await handlers.verify_document(
        db.engine, BASE, _credential(OLD_ID, 6, "https://w3id.org/microcred/v1"))
    assert old_revoked["status"] == "revoked", old_revoked["problems"]


async def test_a_did_web_key_of_another_issuer_does_not_vouch_for_ours(db: Any) -> None:
    await _publish_issuer_and_lists(db)
    forged = _credential("did:web:registry.test:issuers:someone-else", 3,
                         f"{BASE}/contexts/microcred/v1")
    result = await handlers.verify_document(db.engine, BASE, forged)
    assert not result["verified"]
    assert any(c["check"] == "issuer_key" and not c["ok"] for c in result["checks"])


# --- a stored credential: one statement, unchanged documents from memory (issue 12) ------

async def _store(db: Any, cid: uuid.UUID, doc: dict[str, Any]) -> None:
    import json

    import sqlalchemy as sa

    async with db.engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO credentials (credential_id, provider_id, learner_key, title, "
            "document, status, issued_at, registered_at) VALUES (:c, 'lakeshore', 'k', 't', "
            "CAST(:d AS jsonb), 'active', now(), now())"), {"c": cid, "d": json.dumps(doc)})


@pytest.fixture
async def reads(db: Any) -> Any:
    """The registry's read engine over the test database (microcred_registry.reads)."""
    from microcred_registry.reads import read_engine

    engine = read_engine(db.engine, pool_size=1)
    yield engine
    await engine.dispose()


async def test_a_stored_credentials_verification_sees_a_new_status_list_and_a_withdrawn_key(
        db: Any, reads: Any) -> None:
    """The issuer's keys and status lists are kept in memory between verifications: a list
    republished with the credential's bit set, then the issuer's key reported compromised,
    are seen by the very next verification."""
    from datetime import UTC, datetime

    from microcred_registry.credentials import handlers as credentials
    from microcred_registry.wallet.domain import Viewer
    from microcred_shared.contract import topics
    from microcred_shared.contract.events import (
        IssuerKeysPublished,
        IssuerPublicKey,
        StatusListPublished,
    )
    from microcred_shared.vc import keys, proofs, statuslist

    await _publish_issuer_and_lists(db)
    cid = uuid.UUID(int=42)
    await _store(db, cid, _credential(DID, 3, f"{BASE}/contexts/microcred/v1"))
    operator = Viewer(operator=True)
    for _ in range(2):  # the second from memory
        first = await handlers.verify_stored(reads, BASE, cid, operator)
        assert first["verified"] and first["status"] == "valid", first["problems"]

    private = keys.private_key_from_seed(SEED)
    t1 = datetime(2026, 7, 1, tzinfo=UTC)
    url = f"{BASE}/status/lakeshore/revocation/0"
    bits = statuslist.new_list()
    statuslist.set_bit(bits, 3)
    await db.deliver(topics.STATUS_LISTS, credentials.on_status_list, StatusListPublished, [
        StatusListPublished(url=url, provider_id="lakeshore", purpose="revocation", version=2,
                            credential=proofs.sign(statuslist.status_list_credential(
                                url=url, issuer=DID, purpose="revocation",
                                encoded_list=statuslist.encode_list(bits), valid_from=t1),
                                private, f"{DID}#key-1", created=t1), published_at=t1)])
    revoked = await handlers.verify_stored(reads, BASE, cid, operator)
    assert revoked["status"] == "revoked" and not revoked["verified"]

    await db.deliver(topics.ISSUER_KEYS, credentials.on_issuer_keys, IssuerKeysPublished, [
        IssuerKeysPublished(provider_id="lakeshore", profile={"id": DID, "name": "Lakeshore"},
                            keys=[IssuerPublicKey(
                                key_id="key-1", status="compromised", created_at=t1,
                                public_multikey=keys.multikey_encode(private.public_key()),
                                retired_at=t1)], published_at=t1)])
    withdrawn = await handlers.verify_stored(reads, BASE, cid, operator)
    assert not withdrawn["verified"]
    assert any(c["check"] == "issuer_key" and not c["ok"] for c in withdrawn["checks"])


async def test_a_stored_credential_is_verified_only_for_who_may_read_it(
        db: Any, reads: Any) -> None:
    from microcred_registry.wallet.domain import ANYONE

    await _publish_issuer_and_lists(db)
    cid = uuid.UUID(int=43)
    await _store(db, cid, _credential(DID, 3, f"{BASE}/contexts/microcred/v1"))
    with pytest.raises(Problem) as raised:
        await handlers.verify_stored(reads, BASE, cid, ANYONE)
    assert raised.value.status == 404


async def test_a_read_survives_a_connection_the_server_dropped(db: Any, reads: Any) -> None:
    """The read engine has no pre-ping: a connection PostgreSQL closed (a restart, a
    failover) is found out by the read itself, which runs again on a fresh one."""
    from microcred_registry import reads as hot

    pid = (await hot.fetchrow(reads, "SELECT pg_backend_pid() AS pid"))["pid"]
    await db.rows("SELECT pg_terminate_backend(:pid)", pid=pid)
    again = await hot.fetchrow(reads, "SELECT pg_backend_pid() AS pid")
    assert again is not None and again["pid"] != pid


async def test_a_stored_credential_changed_in_the_database_fails_the_next_verification(
        db: Any, reads: Any) -> None:
    """What a verification computes from a stored credential's bytes alone (its canonical
    hash, its signature) is kept by those bytes: the same credential with one word changed
    where it is stored, proof and all, is verified afresh and fails."""
    import json

    import sqlalchemy as sa

    from microcred_registry.wallet.domain import Viewer

    await _publish_issuer_and_lists(db)
    cid = uuid.UUID(int=44)
    doc = _credential(DID, 3, f"{BASE}/contexts/microcred/v1")
    await _store(db, cid, doc)
    operator = Viewer(operator=True)
    for _ in range(2):
        good = await handlers.verify_stored(reads, BASE, cid, operator)
        assert good["verified"], good["problems"]
    doc["credentialSubject"]["name"] = "Mallory"
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE credentials SET document = CAST(:d AS json) "
                                   "WHERE credential_id = :c"), {"c": cid, "d": json.dumps(doc)})
    tampered = await handlers.verify_stored(reads, BASE, cid, operator)
    assert not tampered["verified"] and tampered["status"] == "invalid"
    assert [c["ok"] for c in tampered["checks"] if c["check"] == "proof"] == [False]
