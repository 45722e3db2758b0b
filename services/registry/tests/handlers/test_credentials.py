"""The credentials context's Kafka handlers against a real database: what issuance, the key
rotation and the status lists publish becomes what the registry serves, once, in order,
and each new registration is announced for notify."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from microcred_registry.credentials import handlers
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode
from microcred_shared.contract.events import (
    CredentialIssued,
    CredentialStatusChanged,
    IssuerKeysPublished,
    IssuerPublicKey,
    StatusListPublished,
    learner_key,
)
from microcred_shared.contract.events_employers import EmployerPublished
from microcred_shared.problems import Problem
from microcred_shared.vc import multikey_encode, private_key_from_seed

BASE = "https://registry.test"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def issued(n: int = 1, *, learner: str = "learner-a", **fields: Any) -> CredentialIssued:
    cid = uuid.UUID(int=n)
    return CredentialIssued(
        credential_id=cid, assessment_id=uuid.UUID(int=1000 + n), provider_id="lakeshore",
        definition_id="data-analysis", definition_version=1, learner_key=learner,
        learner_email="ada@learners.example", learner_name="Ada", learner_language="fr",
        title=f"Credential {n}", issued_at=T0,
        credential=fields.pop("credential", {"id": f"urn:uuid:{cid}", "name": f"doc {n}",
                                              "proof": [{"proofValue": "z" * 8}]}),
        **fields)


async def test_an_issued_credential_is_stored_exactly_as_signed_and_its_registration_announced(
        db: Any) -> None:
    event = issued(1)
    await db.register(event)

    doc = await handlers.document(db.engine, event.credential_id)
    assert doc == event.credential
    [out] = await db.published()
    assert out["topic"] == topics.CREDENTIALS_REGISTERED
    assert out["type"] == "ca.microcred.credential.registered.v1"
    assert out["payload"]["url"] == f"{BASE}/v1/credentials/{event.credential_id}"
    assert out["payload"]["learner_email"] == "ada@learners.example"
    assert out["payload"]["learner_language"] == "fr"


async def test_a_credential_issued_twice_is_registered_and_announced_once(db: Any) -> None:
    # Issuance may republish (at least once): a new ce_id, the same credential.
    await db.register(issued(1), issued(1))
    await db.register(issued(1))

    assert len(await db.rows("SELECT 1 FROM credentials")) == 1
    assert [o["topic"] for o in await db.published()] == [topics.CREDENTIALS_REGISTERED]


async def test_a_redelivered_record_is_a_no_op(db: Any) -> None:
    record = db.record(topics.CREDENTIALS_ISSUED, issued(1), ce_id="same-id")
    await db.register(record)
    await db.register(db.record(topics.CREDENTIALS_ISSUED, issued(2), ce_id="same-id"))

    assert [r.title for r in await db.rows("SELECT title FROM credentials")] == ["Credential 1"]


async def test_an_event_that_does_not_belong_on_the_topic_is_dead_lettered(db: Any) -> None:
    stray = EmployerPublished(employer_id="acme", organisation="Acme", status="approved",
                              published_at=T0)
    consumer = await db.register(issued(1), stray)

    assert consumer.dead_lettered == 1
    letters = [o for o in await db.published() if o["topic"] == topics.dlq(
        topics.CREDENTIALS_ISSUED)]
    assert len(letters) == 1 and "does not belong on this topic" in letters[0]["reason"]
    assert len(await db.rows("SELECT 1 FROM credentials")) == 1


async def test_a_missing_credential_is_a_404_problem(db: Any) -> None:
    with pytest.raises(Problem) as raised:
        await handlers.document(db.engine, uuid.UUID(int=42))
    assert raised.value.status == 404


async def test_an_operator_lists_a_learners_credentials_oldest_first(db: Any) -> None:
    await db.register(issued(2, learner="k"), issued(1, learner="k"), issued(3, learner="other"))

    listed = await handlers.learner_credentials(db.engine, "k", BASE)
    assert listed["count"] == 2
    assert {c["title"] for c in listed["credentials"]} == {"Credential 1", "Credential 2"}
    assert listed["credentials"][0]["url"].startswith(f"{BASE}/v1/credentials/")


def keys_event(published_at: datetime, *statuses: str) -> IssuerKeysPublished:
    return IssuerKeysPublished(
        provider_id="lakeshore", profile={"id": f"{BASE}/issuers/lakeshore", "name": "Lakeshore"},
        keys=[IssuerPublicKey(
            key_id=f"key-{i}", status=status,
            public_multikey=multikey_encode(private_key_from_seed(bytes([i] * 32)).public_key()),
            created_at=T0, retired_at=published_at if status != "active" else None)
            for i, status in enumerate(statuses, start=1)],
        published_at=published_at)


async def test_issuer_keys_older_than_those_stored_never_replace_them(db: Any) -> None:
    newer = keys_event(T0 + timedelta(hours=1), "retired", "active")
    older = keys_event(T0, "active")
    await db.deliver(topics.ISSUER_KEYS, handlers.on_issuer_keys, IssuerKeysPublished, [newer])
    await db.deliver(topics.ISSUER_KEYS, handlers.on_issuer_keys, IssuerKeysPublished, [older])

    async with db.engine.connect() as conn:
        doc = await handlers.issuer_document(conn, "lakeshore", BASE)
    assert doc is not None
    methods = {m["id"].rsplit("#", 1)[1]: m for m in doc["verificationMethod"]}
    assert set(methods) == {"key-1", "key-2"}
    assert "expires" in methods["key-1"] and "expires" not in methods["key-2"]


async def test_the_did_document_lists_every_key_with_its_fate_and_the_profile_url_the_same(
        db: Any) -> None:
    await db.deliver(topics.ISSUER_KEYS, handlers.on_issuer_keys, IssuerKeysPublished,
                     [keys_event(T0, "retired", "compromised", "active")])
    did = "did:web:registry.test:issuers:lakeshore"
    async with db.engine.connect() as conn:
        doc = await handlers.issuer_document(conn, "lakeshore", BASE, did=True)
        profile = await handlers.issuer_document(conn, "lakeshore", BASE)
    assert doc is not None and profile is not None
    assert doc["@context"] == ["https://www.w3.org/ns/did/v1",
                               "https://w3id.org/security/multikey/v1"]
    assert doc["id"] == doc["controller"] == did
    assert doc["alsoKnownAs"] == [f"{BASE}/issuers/lakeshore"]
    assert "name" not in doc  # DID Core and Multikey terms only: the profile is elsewhere
    methods = {m["id"]: m for m in doc["verificationMethod"]}
    # The compromised key is gone: wallets' verifiers ignore `revoked` on a method.
    assert set(methods) == {f"{did}#key-1", f"{did}#key-3"}
    assert doc["assertionMethod"] == list(methods)
    assert {m["controller"] for m in methods.values()} == {did}
    assert "expires" in methods[f"{did}#key-1"]
    assert not {"expires", "revoked"} & set(methods[f"{did}#key-3"])
    # The profile URL (id of credentials issued before did:web) lists the same keys, the
    # compromised one marked `revoked` (the reference verifier and ours honour it).
    assert profile["id"] == f"{BASE}/issuers/lakeshore" and profile["name"] == "Lakeshore"
    assert profile["alsoKnownAs"] == [did]
    old = {m["id"].rsplit("#")[1]: m for m in profile["verificationMethod"]}
    assert "revoked" in old["key-2"]
    assert ([old[k]["publicKeyMultibase"] for k in ("key-1", "key-3")]
            == [m["publicKeyMultibase"] for m in doc["verificationMethod"]])


def status_list(version: int) -> StatusListPublished:
    return StatusListPublished(
        url=f"{BASE}/status/lakeshore/revocation/1", provider_id="lakeshore",
        purpose="revocation", version=version, credential={"version": version},
        published_at=T0 + timedelta(minutes=version))


async def test_a_replayed_older_status_list_does_not_override_the_newer(db: Any) -> None:
    await db.deliver(topics.STATUS_LISTS, handlers.on_status_list, StatusListPublished,
                     [status_list(1), status_list(3)])
    await db.deliver(topics.STATUS_LISTS, handlers.on_status_list, StatusListPublished,
                     [status_list(2)])

    async with db.engine.connect() as conn:
        found = await handlers.status_list(conn, f"{BASE}/status/lakeshore/revocation/1")
        missing = await handlers.status_list(conn, f"{BASE}/status/lakeshore/suspension/1")
    assert found == ({"version": 3}, 3)
    assert missing is None


async def test_a_revocation_changes_the_status_and_keeps_the_issuers_reason(db: Any) -> None:
    event = issued(1)
    await db.register(event)
    change = CredentialStatusChanged(
        credential_id=event.credential_id, provider_id="lakeshore", learner_key="learner-a",
        status="revoked", action="revoke", reason="issued in error", changed_at=T0)
    await db.deliver(topics.CREDENTIAL_STATUS, handlers.on_status_changed,
                     CredentialStatusChanged, [change])

    [row] = await db.rows("SELECT status FROM credentials")
    assert row.status == "revoked"
    async with db.engine.connect() as conn:
        assert await handlers.issuer_reason(conn, event.credential_id) == "issued in error"


def status_change(credential_id: uuid.UUID, status: str, action: str, reason: str,
                  minute: int) -> CredentialStatusChanged:
    return CredentialStatusChanged(
        credential_id=credential_id, provider_id="lakeshore", learner_key="learner-a",
        status=status, action=action, reason=reason,  # type: ignore[arg-type]
        changed_at=T0 + timedelta(minutes=minute))


async def test_a_batch_of_status_changes_is_one_statement_with_every_effect(db: Any) -> None:
    """Issue 12: a status change cost an UPDATE and an INSERT per event. Now a batch is one
    statement: each change is kept in order, each credential ends in its last change's
    status (a change for a credential not registered yet is kept too), and a redelivered
    batch changes nothing (the consumer's inbox)."""
    a, b, c = issued(1), issued(2), issued(3)
    await db.register(a, b, c)
    unknown = uuid.UUID(int=99)
    changes = [status_change(a.credential_id, "revoked", "revoke", "issued in error", 1),
               status_change(b.credential_id, "suspended", "suspend", "under review", 2),
               status_change(unknown, "revoked", "revoke", "not here yet", 3),
               status_change(b.credential_id, "active", "unsuspend", "review cleared", 4)]
    records = [db.record(topics.CREDENTIAL_STATUS, e) for e in changes]
    sent: list[str] = []
    inside = False

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if inside:
            sent.append(statement)

    async def counted(conn: Any, items: list[Any]) -> dict[int, str]:
        nonlocal inside
        inside = True
        try:
            return await handlers.on_status_changed(conn, items)
        finally:
            inside = False

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await db.deliver(topics.CREDENTIAL_STATUS, counted, CredentialStatusChanged, records)
        assert len(sent) == 1, sent
        await db.deliver(topics.CREDENTIAL_STATUS, counted, CredentialStatusChanged, records)
        assert len(sent) == 1, sent  # the redelivery is dropped before the handler
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", seen)

    found = {r.credential_id: r.status for r in await db.rows(
        "SELECT credential_id, status FROM credentials")}
    assert found == {a.credential_id: "revoked", b.credential_id: "active",
                     c.credential_id: "active"}
    kept = await db.rows("SELECT credential_id, action, status, reason, changed_at "
                         "FROM status_events ORDER BY id")
    assert [tuple(r) for r in kept] == [
        (e.credential_id, e.action, e.status, e.reason, e.changed_at) for e in changes]
    async with db.engine.connect() as conn:
        assert await handlers.issuer_reason(conn, b.credential_id) == "review cleared"
        assert await handlers.issuer_reason(conn, unknown) == "not here yet"
    # The page reads the same on the read engine (microcred_registry.reads), latest first.
    assert await handlers.issuer_reason_read(db.engine, b.credential_id) == "review cleared"
    assert await handlers.issuer_reason_read(db.engine, unknown) == "not here yet"
    assert await handlers.issuer_reason_read(db.engine, c.credential_id) == ""


def issued_like_issuance(n: int) -> dict[str, Any]:
    """A signed credential the size and make of issuance's (~4 KB of JSON): both status
    entries, a hashed identity, results and evidence, an Ed25519 proof."""
    import hashlib

    from microcred_shared.vc import proofs as vc_proofs
    from microcred_testkit.vc_examples import example_credential

    base = "https://registry.test/status/lakeshore"
    doc = example_credential(
        credential_id=f"urn:uuid:{uuid.UUID(int=n)}", valid_until="2031-06-30T00:00:00Z",
        credential_status=[{
            "id": f"{base}/{purpose}/0#{4096 + n}", "type": "BitstringStatusListEntry",
            "statusPurpose": purpose, "statusListIndex": str(4096 + n),
            "statusListCredential": f"{base}/{purpose}/0"} for purpose in (
                "revocation", "suspension")])
    salt = hashlib.sha256(f"salt-{n}".encode()).hexdigest()[:16]
    doc["credentialSubject"]["identifier"] = [{
        "type": "IdentityObject", "identityType": "emailAddress", "hashed": True,
        "salt": salt, "identityHash": "sha256$" + hashlib.sha256(
            f"learner{n}@learners.example{salt}".encode()).hexdigest()}]
    doc["credentialSubject"]["result"] += [
        {"type": ["Result"], "value": str(60 + k),
         "resultDescription": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, str(k))}"}
        for k in range(4)]
    doc["evidence"] = [{"type": ["Evidence"], "id": f"https://lakeshore.example.ca/evidence/{n}",
                        "name": "Observed practical test", "description":
                        "Assessed by a certified assessor on site, with a written quiz."}]
    return vc_proofs.sign(doc, private_key_from_seed(bytes(32)),
                          "https://issuers.example.ca/lakeshore-college#key-1")


async def test_a_signed_credential_is_kept_compressed_in_its_own_row_and_served_as_sent(
        db: Any) -> None:
    """One page read per credential: a learner's listing in a registry of millions reads
    ten credentials from ten places on disk (bench/registry/README.md)."""
    events = [issued(n, credential=issued_like_issuance(n)) for n in range(1, 4)]
    await db.register(*events)

    [(toast,)] = await db.rows(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'credentials'")
    [(chunks,)] = await db.rows(f"SELECT count(*) FROM {toast}")
    assert chunks == 0  # nothing of any document moved out of its row
    for stored, text in await db.rows(
            "SELECT pg_column_size(document), octet_length(document::text) FROM credentials"):
        assert text > 3500 and stored < 0.65 * text  # compressed, in the row
    for event in events:
        served = await handlers.learner_credentials_json(db.engine, event.learner_key, BASE)
        assert event.credential in [c["credential"] for c in json.loads(served)["credentials"]]


async def test_a_realistic_credential_row_leaves_nothing_in_the_toast_table(db: Any) -> None:
    """Issue 12: with only the document kept in the row, a row of real size (the document's
    ~4 KB of text still uncompressed when PostgreSQL starts shrinking the row) had every
    other text value over 24 bytes moved out, each a TOAST row written per registration
    and fetched back by a listing: a learner's key (a 36-character UUID), a longer title,
    a provider's or definition's longer id (migration 15 keeps them all in the row)."""
    key = learner_key("ada.lovelace@learners.example.org")
    event = issued(1, learner=key, credential=issued_like_issuance(1)).model_copy(update={
        "provider_id": "lakeshore-college-of-applied-arts",
        "definition_id": "lakeshore-college-of-applied-arts-data-analysis",
        "title": "Applied Data Analysis: Practical Assessment (Level 2)"})
    assert len(key) == 36
    await db.register(event)

    [(toast,)] = await db.rows(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'credentials'")
    [(chunks,)] = await db.rows(f"SELECT count(*) FROM {toast}")
    assert chunks == 0  # not the learner's key, not the title, not the ids
    [row] = await db.rows("SELECT provider_id, definition_id, learner_key, title, status, "
                          "pg_column_size(document) AS stored, "
                          "octet_length(document::text) AS text FROM credentials")
    assert (row.provider_id, row.definition_id, row.learner_key, row.title, row.status) == (
        event.provider_id, event.definition_id, key, event.title, "active")
    assert row.text > 3500 and row.stored < 0.65 * row.text  # compressed, in the row
    [listed] = json.loads(await handlers.learner_credentials_json(
        db.engine, key, BASE))["credentials"]
    assert listed["title"] == event.title and listed["credential"] == event.credential


def _record_with_value(db: Any, event: CredentialIssued, value: bytes) -> ConsumerRecord:
    """The event's record with its JSON written otherwise than `encode` writes it."""
    record = db.record(topics.CREDENTIALS_ISSUED, event)
    return dataclasses.replace(record, value=value, serialized_value_size=len(value))


async def test_every_document_is_stored_as_the_text_postgresql_takes_out_of_its_record(
        db: Any) -> None:
    """Wave 17: the registry cuts the credential's text out of the record where it safely
    can, else PostgreSQL takes it out of the whole record as before; either way the stored
    document is byte for byte the member's text in the record as sent (what `-> 'credential'`
    of the record gives), and the one pydantic parsed."""
    plain = issued(1, credential=issued_like_issuance(1))
    nested = issued(2, credential={"id": f"urn:uuid:{uuid.UUID(int=2)}", "evidence": [
        {"credential": {"name": "a nested key named credential"}}]})
    escaped = issued(3, credential={"id": f"urn:uuid:{uuid.UUID(int=3)}",
                                    "name": "tab\there, bell \x07 and é"})
    braced = issued(4).model_copy(update={"title": "Data {analysis} [level 2]"})
    spaced = issued(5)
    spaced_value = json.dumps(json.loads(encode(spaced)), indent=1).encode()
    twice = issued(6)
    # A record repeating its `credential` member: the parser keeps the last one.
    twice_value = encode(twice)[:-1] + b',"credential":{"id":"urn:uuid:' + str(
        uuid.UUID(int=6)).encode() + b'","name":"the last one"}}'
    # As issuance signs them (wave 19): a narrative in lines, so a `\\n` in the text.
    narrated_doc = issued_like_issuance(7)
    narrated_doc["name"] = 'Data "analysis"\nin two lines, C:\\u0041'
    narrated = issued(7, credential=narrated_doc)
    spelt_twice = issued(8)
    spelt_twice_value = encode(spelt_twice)[:-1] + b',"cr\\u0065dential":{"id":"urn:uuid:' + str(
        uuid.UUID(int=8)).encode() + b'","name":"the last one, spelt with an escape"}}'
    records = [db.record(topics.CREDENTIALS_ISSUED, e)
               for e in (plain, nested, escaped, braced, narrated)]
    records += [_record_with_value(db, spaced, spaced_value),
                _record_with_value(db, twice, twice_value),
                _record_with_value(db, spelt_twice, spelt_twice_value)]
    await db.register(*records)

    for record in records:
        event = CredentialIssued.model_validate_json(record.value)
        [(expected,)] = await db.rows("SELECT (CAST(:v AS json) -> 'credential')::text",
                                      v=record.value.decode())
        [(stored,)] = await db.rows(
            "SELECT document::text FROM credentials WHERE credential_id = :id",
            id=event.credential_id)
        assert stored == expected
        assert json.loads(stored) == event.credential
    assert json.loads(twice_value)["credential"]["name"] == "the last one"
    assert json.loads(spelt_twice_value)["credential"]["name"].endswith("with an escape")


async def test_registering_keeps_only_the_indexes_a_query_reads_and_a_custom_id(
        db: Any) -> None:
    """Migration 16: no index by issuer, none of a wallet exchange by credential, and no
    index parsing every document for its `id`; a document's own `id` is kept where it is
    not `urn:uuid:<credential id>`."""
    ours = issued(1)
    named = issued(2, credential={"id": "https://lakeshore.example/credentials/2",
                                  "name": "named by a VC-API caller"})
    await db.register(ours, named)

    indexes = {r.indexname for r in await db.rows(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'credentials'")}
    assert indexes == {"credentials_pkey", "credentials_assessment_id_key",
                       "ix_credentials_learner_key", "ix_credentials_definition_version",
                       "ix_credentials_custom_document_id"}
    exchange_indexes = {r.indexname for r in await db.rows(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'wallet_exchanges'")}
    assert exchange_indexes == {"wallet_exchanges_pkey"}
    rows = dict(await db.rows("SELECT credential_id, custom_document_id FROM credentials"))
    assert rows == {ours.credential_id: None,
                    named.credential_id: "https://lakeshore.example/credentials/2"}


async def test_migration_16_fills_in_the_custom_ids_of_credentials_stored_before_it(
        handler_db: Any) -> None:
    from microcred_registry.migrations import MIGRATIONS
    from microcred_shared.db import migrate

    engine = await handler_db(MIGRATIONS[:15])
    async with engine.begin() as conn:  # the table as migration 15 left it
        await conn.execute(sa.text("ALTER TABLE credentials DROP COLUMN custom_document_id"))
        await conn.execute(sa.text("CREATE INDEX ix_credentials_provider_id "
                                   "ON credentials (provider_id)"))
        await conn.execute(sa.text("CREATE INDEX ix_wallet_exchanges_credential_id "
                                   "ON wallet_exchanges (credential_id)"))
        for n, doc_id in ((1, f"urn:uuid:{uuid.UUID(int=1)}"), (2, "https://x.example/2"),
                          (3, f"urn:uuid:{uuid.UUID(int=99)}"), (4, None)):
            doc = {"name": f"doc {n}"} | ({"id": doc_id} if doc_id else {})
            await conn.execute(sa.text(
                "INSERT INTO credentials (credential_id, provider_id, learner_key, title, "
                "document, status, issued_at, registered_at) VALUES (:id, 'p', 'k', 't', "
                "CAST(:doc AS json), 'active', now(), now())"),
                {"id": uuid.UUID(int=n), "doc": json.dumps(doc)})
    await migrate(engine, MIGRATIONS)

    async with engine.connect() as conn:
        rows = dict((await conn.execute(sa.text(
            "SELECT credential_id, custom_document_id FROM credentials"))).all())
        indexes = set((await conn.execute(sa.text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'credentials'"))).scalars())
    assert rows == {uuid.UUID(int=1): None, uuid.UUID(int=2): "https://x.example/2",
                    uuid.UUID(int=3): f"urn:uuid:{uuid.UUID(int=99)}", uuid.UUID(int=4): None}
    assert "ix_credentials_document_id" not in indexes
    assert "ix_credentials_provider_id" not in indexes
    async with engine.connect() as conn:
        assert not (await conn.execute(sa.text(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_wallet_exchanges_credential_id'"
        ))).first()
