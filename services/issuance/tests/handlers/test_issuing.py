"""Achieved assessments become signed Open Badges credentials, exactly once, and a provider's
own credential goes through the same issuing path (VC-API)."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
import sqlalchemy as sa

from microcred_issuance.issuing.domain import Refused, WrongIssuer
from microcred_issuance.issuing.handlers import CatalogBehind, issue_submitted, on_decisions
from microcred_shared import db, projection
from microcred_shared.contract import topics
from microcred_shared.contract.events import (
    AssessmentDecided,
    CredentialIssued,
    StatusListPublished,
)
from microcred_shared.db import unavailable
from microcred_shared.vc import proofs

DATA = "lakeshore-data-analytics-fundamentals"
SAFETY = "lakeshore-workplace-safety"
FORESTRY = "cmu-sustainable-forestry"
LAKESHORE = "lakeshore-college"


def verifies(world, signed: dict, provider_id: str) -> bool:
    key = world.keys.active(provider_id)
    vm = proof_of(signed)["verificationMethod"]
    assert vm == f"did:web:registry.microcred.example:issuers:{provider_id}#{key.key_id}"
    return proofs.verify_proof_sync(signed, lambda _vm: key.private.public_key()).ok


def proof_of(signed: dict) -> dict:
    proof = signed["proof"]
    return proof[0] if isinstance(proof, list) else proof


async def decide(world, *decisions: AssessmentDecided, ids: list[str] | None = None) -> None:
    await world.deliver(topics.DECISIONS, list(decisions),
                        partial(on_decisions, ctx=world.issuing), AssessmentDecided, ids=ids)


async def test_an_achieved_assessment_is_issued_as_a_signed_credential_naming_its_learner(
        world):
    decision = world.decided(DATA, score=91)
    await decide(world, decision)
    [issued] = [p.event for p in await world.published(topics.CREDENTIALS_ISSUED)]
    assert isinstance(issued, CredentialIssued)
    assert (issued.assessment_id, issued.provider_id, issued.definition_id) == (
        decision.assessment_id, LAKESHORE, DATA)
    assert issued.learner_email == decision.learner.email
    doc = issued.credential
    assert doc["id"] == f"urn:uuid:{issued.credential_id}"
    assert doc["issuer"]["id"] == f"did:web:registry.microcred.example:issuers:{LAKESHORE}"
    assert doc["credentialSubject"]["result"][0]["value"] == "91"
    assert verifies(world, doc, LAKESHORE)
    row = (await world.rows("SELECT assessment_id, status, learner_key FROM issued_credentials"))
    assert [(r.assessment_id, r.status, r.learner_key) for r in row] == [
        (decision.assessment_id, "active", decision.learner_key)]


async def test_the_first_credential_of_a_provider_publishes_its_status_lists_before_itself(
        world):
    await decide(world, world.decided(SAFETY))
    out = await world.published()
    assert [p.topic for p in out] == [topics.STATUS_LISTS, topics.STATUS_LISTS,
                                     topics.CREDENTIALS_ISSUED]
    lists = [p.event for p in out[:2]]
    assert all(isinstance(e, StatusListPublished) for e in lists)
    assert sorted(e.purpose for e in lists) == ["revocation", "suspension"]
    status = out[2].event.credential["credentialStatus"]  # not suspendable: one entry
    assert status["statusListCredential"] == next(e.url for e in lists
                                                  if e.purpose == "revocation")
    assert all(verifies(world, e.credential, LAKESHORE) for e in lists)


async def test_a_failed_assessment_issues_nothing(world):
    await decide(world, world.decided(DATA, achieved=False, score=12))
    assert await world.published() == []
    assert await world.scalar("SELECT count(*) FROM issued_credentials") == 0


async def test_a_decision_delivered_again_under_a_new_event_id_is_not_issued_twice(world):
    decision = world.decided(DATA, score=80)
    await decide(world, decision)
    await decide(world, decision)  # a replay: the inbox does not know this ce_id
    assert await world.scalar("SELECT count(*) FROM issued_credentials") == 1
    assert len(await world.published(topics.CREDENTIALS_ISSUED)) == 1
    assert await world.published(topics.dlq(topics.DECISIONS)) == []  # a no-op, not an error


async def test_a_batch_gives_consecutive_status_indexes_per_issuer(world):
    batch = [world.decided(DATA, score=70), world.decided(FORESTRY, rubric_level="exemplary"),
             world.decided(SAFETY)]
    await decide(world, *batch)
    rows = await world.rows("SELECT provider_id, status_index FROM issued_credentials "
                            "ORDER BY provider_id, status_index")
    assert [(r.provider_id, r.status_index) for r in rows] == [
        ("coast-mountain-university", 0), (LAKESHORE, 0), (LAKESHORE, 1)]
    issued = [p.event for p in await world.published(topics.CREDENTIALS_ISSUED)]
    assert {e.assessment_id for e in issued} == {d.assessment_id for d in batch}


async def test_the_register_keeps_only_the_indexes_a_query_reads(world):
    """Issue 12, wave 18 (migration 8): nothing finds issued credentials by issuer, so the
    register has no index on `provider_id`; a database that has one loses it, and a batch
    is still issued with its issuers' consecutive status indexes."""
    from microcred_issuance.migrations import drop_unread_provider_index

    indexes = sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'issued_credentials'")
    wanted = {"issued_credentials_pkey", "issued_credentials_assessment_id_key",
              "ix_issued_credentials_learner_key"}
    async with world.engine.begin() as conn:
        assert set((await conn.execute(indexes)).scalars()) == wanted
        await conn.execute(sa.text("CREATE INDEX ix_issued_credentials_provider_id "
                                   "ON issued_credentials (provider_id)"))
        await drop_unread_provider_index(conn)
        await drop_unread_provider_index(conn)  # again: a no-op
        assert set((await conn.execute(indexes)).scalars()) == wanted
    await decide(world, world.decided(DATA, score=70), world.decided(SAFETY))
    rows = await world.rows("SELECT provider_id, status_index FROM issued_credentials "
                            "ORDER BY status_index")
    assert [(r.provider_id, r.status_index) for r in rows] == [(LAKESHORE, 0), (LAKESHORE, 1)]


async def test_a_decision_for_another_providers_definition_is_dead_lettered(world):
    wrong = world.decided(DATA, provider_id="coast-mountain-university", score=90)
    fine = world.decided(SAFETY)
    await decide(world, wrong, fine)
    [letter] = await world.published(topics.dlq(topics.DECISIONS))
    assert "no definition 'lakeshore-data-analytics-fundamentals' for this provider" in \
        letter.headers["dlq_reason"]
    [issued] = [p.event for p in await world.published(topics.CREDENTIALS_ISSUED)]
    assert issued.assessment_id == fine.assessment_id


async def test_a_decision_that_overtook_its_definition_version_waits_for_it(world):
    newer = world.seed.definition(SAFETY).model_copy(update={"version": 2})
    decision = world.decided(SAFETY, version=2)

    async def projected_a_moment_later() -> None:
        await asyncio.sleep(0.3)
        async with world.engine.begin() as conn:
            await projection.put_definition(conn, newer)

    await asyncio.gather(decide(world, decision), projected_a_moment_later())
    [issued] = [p.event for p in await world.published(topics.CREDENTIALS_ISSUED)]
    assert issued.definition_version == 2


async def test_a_decision_whose_issuer_is_not_projected_yet_is_retried_not_dead_lettered(
        world):
    async with world.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM catalog_providers WHERE id = :p"),
                           {"p": "ontario-construction-sector-council"})
    await world.live.refresh(force=True)
    decision = world.decided("ocsc-site-supervisor-readiness")
    async with world.engine.begin() as conn:
        with pytest.raises(CatalogBehind, match="not projected yet") as caught:
            await on_decisions(conn, [_incoming(decision)], ctx=world.issuing)
    # The consumer loop retries transient failures (then leaves the batch to redelivery).
    assert unavailable(caught.value)
    assert await world.published() == []


def _incoming(event):
    from aiokafka.structs import ConsumerRecord

    from microcred_shared.consumer import Incoming
    from microcred_shared.contract.cloudevents import new_envelope

    env = new_envelope(event, "/test")
    return Incoming(ConsumerRecord(topics.DECISIONS, 0, 0, 0, 0, None, b"", None, 0, 0, []),
                    env, event, None)


def submitted(world, provider_id: str = LAKESHORE, **extra) -> dict:
    return {"@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"], "name": "Workshop attendance",
            "issuer": f"did:web:registry.microcred.example:issuers:{provider_id}",
            "credentialSubject": {"id": "did:example:learner-1"}, **extra}


async def test_a_provider_issues_its_own_credential_through_the_same_issuing_path(world):
    async with world.engine.begin() as conn:
        signed = await issue_submitted(conn, world.issuing, LAKESHORE, submitted(world),
                                       requested_id=None, cryptosuite="eddsa-jcs-2022",
                                       traceparent=None)
    assert proof_of(signed)["cryptosuite"] == "eddsa-jcs-2022"
    assert verifies(world, signed, LAKESHORE)
    assert signed["credentialStatus"]["statusListIndex"] == "0"
    assert signed["credentialStatus"]["statusPurpose"] == "revocation"
    out = await world.published()
    assert [p.topic for p in out] == [topics.STATUS_LISTS, topics.STATUS_LISTS,
                                     topics.CREDENTIALS_ISSUED]
    issued = out[2].event
    assert isinstance(issued, CredentialIssued)
    assert issued.title == "Workshop attendance" and issued.credential == signed
    assert issued.assessment_id is None and issued.definition_id is None
    row = (await world.rows("SELECT credential_id, learner_key FROM issued_credentials"))[0]
    assert (row.credential_id, row.learner_key) == (issued.credential_id, issued.learner_key)


async def test_the_vc_api_keeps_a_requested_id_and_status_and_shares_the_index_sequence(world):
    await decide(world, world.decided(SAFETY))
    async with world.engine.begin() as conn:
        signed = await issue_submitted(conn, world.issuing, LAKESHORE, submitted(world),
                                       requested_id="urn:uuid:my-own", cryptosuite=None,
                                       traceparent=None)
    assert signed["id"] == "urn:uuid:my-own"
    assert proof_of(signed)["cryptosuite"] == "eddsa-rdfc-2022"
    assert signed["credentialStatus"]["statusListIndex"] == "1"


async def test_the_vc_api_refuses_a_signed_credential_or_another_issuer_and_keeps_nothing(
        world):
    async with world.engine.begin() as conn:
        with pytest.raises(Refused, match="must not carry a proof"):
            await issue_submitted(conn, world.issuing, LAKESHORE,
                                  submitted(world, proof={"type": "DataIntegrityProof"}),
                                  requested_id=None, cryptosuite=None, traceparent=None)
        with pytest.raises(WrongIssuer, match="issues as did:web:.*:issuers:lakeshore-college"):
            await issue_submitted(conn, world.issuing, LAKESHORE,
                                  submitted(world, "coast-mountain-university"),
                                  requested_id=None, cryptosuite=None, traceparent=None)
    assert await world.published() == []
    assert await world.scalar("SELECT count(*) FROM issued_credentials") == 0


class _Sent:
    """Every statement the engine's connections send PostgreSQL: SQLAlchemy's, and the
    driver's own (BEGIN, COMMIT), which SQLAlchemy's events do not see."""

    def __init__(self, engine) -> None:
        self.sql: list[str] = []
        self._watched: set[int] = set()
        sa.event.listen(engine.sync_engine.pool, "checkout", self._watch)
        sa.event.listen(engine.sync_engine, "before_cursor_execute",
                        lambda conn, cursor, sql, *rest: self.sql.append(sql))

    def _watch(self, dbapi_connection, record, proxy) -> None:
        raw = dbapi_connection.driver_connection  # the asyncpg connection
        if id(raw) not in self._watched:
            self._watched.add(id(raw))
            raw.add_query_logger(lambda q: self.sql.append(q.query))

    def naming(self, *words: str) -> list[str]:
        return [s for s in self.sql if any(w in s for w in words)]


async def test_a_batch_reserves_every_issuers_status_indexes_in_one_statement(
        world, monkeypatch):
    """Issue 12: each issuer of every batch cost a BEGIN, the allocation and a COMMIT on a
    connection of its own, then an INSERT ... ON CONFLICT DO NOTHING per purpose and list
    binding a whole empty list (16 KB), lists that exist after a provider's first batch.
    Now a batch sends one statement for all its issuers, which also says which lists exist
    already."""
    monkeypatch.setattr(db, "IDLE_CHECK", 3600.0)  # no pool check's BEGIN in the count
    await decide(world, world.decided(DATA, score=70),
                 world.decided(FORESTRY, rubric_level="exemplary"))  # both issuers' lists
    sent = _Sent(world.engine)
    await decide(world, world.decided(DATA, score=71), world.decided(SAFETY),
                 world.decided(FORESTRY, rubric_level="exemplary"))
    assert len(sent.naming("status_allocations", "status_lists")) == 1, sent.sql  # 2 issuers
    assert not sent.naming("INSERT INTO status_lists")
    transactions = [s for s in sent.sql if s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    assert len(transactions) == 2, sent.sql  # the batch's own BEGIN and COMMIT
    rows = await world.rows("SELECT provider_id, status_index FROM issued_credentials "
                            "ORDER BY provider_id, status_index")
    assert [(r.provider_id, r.status_index) for r in rows] == [
        ("coast-mountain-university", 0), ("coast-mountain-university", 1),
        (LAKESHORE, 0), (LAKESHORE, 1), (LAKESHORE, 2)]
    assert len(await world.published(topics.STATUS_LISTS)) == 4  # made once, by the first


async def test_a_batch_records_every_issuers_credentials_in_one_statement_each_under_its_key(
        world):
    """Issue 12: a batch's credentials were recorded with one INSERT per issuer (a round
    trip each). Now one for the batch; each row still names its own issuer and the key
    that signed it, as the credential's proof does."""
    sent = _Sent(world.engine)
    batch = [world.decided(DATA, score=71), world.decided(SAFETY),
             world.decided(FORESTRY, rubric_level="exemplary")]
    await decide(world, *batch)
    assert len(sent.naming("INSERT INTO issued_credentials")) == 1, sent.sql  # 2 issuers
    rows = await world.rows("SELECT assessment_id, provider_id, key_id FROM issued_credentials")
    issued = {p.event.assessment_id: p.event for p in
              await world.published(topics.CREDENTIALS_ISSUED)}
    assert {r.assessment_id for r in rows} == {d.assessment_id for d in batch}
    for r in rows:
        event = issued[r.assessment_id]
        assert r.provider_id == event.provider_id
        [proof] = event.credential["proof"]
        assert proof["verificationMethod"].endswith("#" + r.key_id)
    assert {r.provider_id for r in rows} == {LAKESHORE, "coast-mountain-university"}


async def test_lists_a_rolled_back_batch_made_are_made_again_by_the_next(world):
    """The allocation is committed at once, the lists with the batch: a batch that rolls
    back leaves its indexes unused and no lists, and the next batch, whose indexes fall into
    the same list, makes and publishes them."""
    ctx = world.issuing
    with pytest.raises(RuntimeError):
        async with world.engine.begin() as conn:
            await on_decisions(conn, [_incoming(world.decided(SAFETY))], ctx=ctx)
            raise RuntimeError("the batch fails after issuing")
    assert await world.scalar("SELECT count(*) FROM status_lists") == 0
    # The record went to the driver's connection once SQLAlchemy had begun: rolled back too.
    assert await world.scalar("SELECT count(*) FROM issued_credentials") == 0
    await decide(world, world.decided(SAFETY))
    assert await world.scalar("SELECT count(*) FROM status_lists") == 2
    out = await world.published()
    assert [p.topic for p in out] == [topics.STATUS_LISTS, topics.STATUS_LISTS,
                                     topics.CREDENTIALS_ISSUED]
    assert out[2].event.credential["credentialStatus"]["statusListIndex"] == "1"


async def test_a_credentials_event_waits_in_the_outbox_as_written_not_compressed(world):
    """Issue 12: PostgreSQL compressed every outbox row over 2 KB (a signed credential's
    event is 2.5-5 KB), to decompress it when the relay claimed it a moment later."""
    await decide(world, world.decided(DATA, score=91))
    [(size, stored, compression)] = await world.rows(
        "SELECT octet_length(payload), pg_column_size(payload), "
        "pg_column_compression(payload) FROM outbox WHERE topic = :t",
        t=topics.CREDENTIALS_ISSUED)
    assert size > 2100  # over the size PostgreSQL compresses by default
    assert compression is None and stored >= size


async def test_a_batch_that_fails_after_recording_keeps_each_credential_once(world, monkeypatch):
    """Issue 12: a batch's redelivery check, record and stack queries go to the driver's
    connection inside the consumer's transaction. A batch whose handler fails after
    recording is rolled back whole, and the retry one by one (a savepoint each) keeps every
    other decision's credential exactly once and dead-letters the failing one."""
    from microcred_issuance.issuing import handlers

    bad = world.decided(DATA, score=80)
    good = [world.decided(DATA, score=90), world.decided(SAFETY),
            world.decided(FORESTRY, rubric_level="exemplary")]
    real = handlers._record

    async def failing(conn, now, rows):
        await real(conn, now, rows)
        if any(r["assessment_id"] == bad.assessment_id for r in rows):
            raise ValueError("failed after recording")

    monkeypatch.setattr(handlers, "_record", failing)
    await decide(world, good[0], bad, *good[1:])
    rows = await world.rows("SELECT assessment_id FROM issued_credentials")
    assert sorted(r.assessment_id for r in rows) == sorted(g.assessment_id for g in good)
    issued = await world.published(topics.CREDENTIALS_ISSUED)
    assert sorted(p.event.assessment_id for p in issued) == sorted(
        g.assessment_id for g in good)
    [letter] = [p for p in await world.published() if p.topic.endswith(".dlq")]
    assert "failed after recording" in str(letter.headers)
