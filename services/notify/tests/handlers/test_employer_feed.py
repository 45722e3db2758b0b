"""The employer feed against a real database: the projection's Kafka handlers decide what
each employer is told (feed entries, webhook deliveries), and the use cases behind the
employer and operator routes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from microcred_notify.employer_feed import audit, employers, subscriptions
from microcred_notify.employer_feed import feed as pull_feed
from microcred_notify.employer_feed import handlers as feed
from microcred_notify.employer_feed.crypto import SecretBox
from microcred_notify.employer_feed.domain import Filters
from microcred_notify.employer_feed.employers import EmployerCreate, EmployerKeyVerifier
from microcred_notify.employer_feed.ratelimit import RateLimiter
from microcred_notify.employer_feed.subscriptions import SubscriptionCreate
from microcred_notify.employer_feed.webhooks import Policy, WebhookWorker
from microcred_shared import netguard
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialIssued, CredentialStatusChanged
from microcred_shared.contract.events_learners import CredentialVisibilityChanged
from microcred_shared.problems import Problem

BASE = "https://notify.example"
BOX = SecretBox(os.urandom(32))
HOOK = "http://127.0.0.1:9/hook"
on_issued = partial(feed.on_issued, base_url=BASE)
on_visibility = partial(feed.on_visibility, base_url=BASE)
on_status = partial(feed.on_status_changed, base_url=BASE)


def now() -> datetime:
    return datetime.now(UTC)


def issued(cid: uuid.UUID, *, region: str = "CA-ON", provider: str = "lakeshore-college",
           learner: str = "learner-1") -> CredentialIssued:
    document = {"id": f"urn:uuid:{cid}", "issuer": {"id": "did:web:lakeshore.example",
                                                    "address": {"addressRegion": region}},
                "credentialSubject": {"achievement": {"name": "Data Analysis", "alignment": [
                    {"targetName": "Numeracy", "targetFramework": "ESCO"}]}}}
    return CredentialIssued(credential_id=cid, provider_id=provider, definition_id="data",
                            learner_key=learner, title="Data Analysis", issued_at=now(),
                            credential=document)


def visibility(cid: uuid.UUID, visibility: str = "employers", shared_with: list[str] = (),
               *, learner: str = "learner-1", at: datetime | None = None,
               ) -> CredentialVisibilityChanged:
    return CredentialVisibilityChanged(credential_id=cid, learner_key=learner,
                                       provider_id="lakeshore-college", visibility=visibility,
                                       shared_with=list(shared_with), changed_at=at or now())


def revoked(cid: uuid.UUID) -> CredentialStatusChanged:
    return CredentialStatusChanged(credential_id=cid, provider_id="lakeshore-college",
                                   learner_key="learner-1", status="revoked", action="revoke",
                                   reason="issued in error", changed_at=now())


async def employer(db: Any, name: str = "Acme") -> tuple[str, str]:
    """An approved employer: (its id, its API key)."""
    row = await employers.register(db.engine, EmployerCreate(
        organisation=name, contact_name="Bo", contact_email="bo@acme.example"))
    row, key = await employers.approve(db.engine, row.id)
    return row.id, key


async def subscribe(db: Any, employer_id: str, *, webhook: bool = False,
                    **filters: list[str]) -> dict[str, Any]:
    return await subscriptions.create(
        db.engine, BOX, employer_id,
        SubscriptionCreate(filters=Filters(**filters), webhook_url=HOOK if webhook else None),
        allow_loopback_http=True)


async def read(db: Any, employer_id: str, cursor: str | None = None) -> dict[str, Any]:
    return await pull_feed.page(db.engine, employer_id, cursor, 100)


def kinds(page: dict[str, Any]) -> list[str]:
    return [e["type"] for e in page["entries"]]


async def deliveries(db: Any) -> list[Any]:
    return await db.rows("SELECT * FROM webhook_deliveries ORDER BY created_at, event_type")


async def test_a_credential_shown_to_employers_reaches_a_subscriber_by_feed_and_webhook(
        db: Any) -> None:
    emp, _ = await employer(db)
    sub = await subscribe(db, emp, webhook=True)
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    assert kinds(await read(db, emp)) == []  # private until the holder chooses otherwise

    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid))
    (entry,) = (await read(db, emp))["entries"]
    assert entry["type"] == "credential.shared"
    assert entry["data"]["credential"]["id"] == f"urn:uuid:{cid}"
    assert entry["data"]["credential_url"] == f"{BASE}/v1/credentials/{cid}"
    (d,) = await deliveries(db)
    assert (d.subscription_id, d.status, d.event_type) == (
        uuid.UUID(sub["id"]), "pending", "credential.shared")
    assert json.loads(d.body)["id"] == entry["id"]


async def test_a_choice_known_before_the_document_shares_once_the_document_arrives(
        db: Any) -> None:
    emp, _ = await employer(db)
    await subscribe(db, emp)
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, "public"))
    assert kinds(await read(db, emp)) == []
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    assert kinds(await read(db, emp)) == ["credential.shared"]


def shown(cid: uuid.UUID, visibility_: str = "employers", shared_with: list[str] = (),
          **kwargs: Any) -> CredentialVisibilityChanged:
    """A choice that lets some employer see the credential, as the registry publishes it:
    with its definition and signed document (ADR 10)."""
    e = issued(cid)
    return visibility(cid, visibility_, shared_with, **kwargs).model_copy(
        update={"definition_id": e.definition_id, "credential": e.credential})


async def view_documents(db: Any, cid: uuid.UUID) -> list[Any]:
    return [r.document for r in await db.rows(
        "SELECT document FROM employer_credential_view WHERE credential_id = :c", c=cid)]


async def test_without_credentials_issued_a_view_takes_the_document_when_first_shown(
        db: Any) -> None:
    """notify reads no credentials.issued (ADR 10): a credential's choices and status keep
    its view without a document while nobody may see it; the choice that shows it brings
    the signed document, and the employer gets it whole, with the facts filters match on."""
    emp, _ = await employer(db)
    await subscribe(db, emp, webhook=True, jurisdictions=["CA-ON"], skills=["numeracy"])
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, "link"))
    await db.consume(topics.CREDENTIAL_STATUS, on_status, CredentialStatusChanged, revoked(cid))
    assert await view_documents(db, cid) == [None]
    assert kinds(await read(db, emp)) == []

    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     shown(cid))
    (entry,) = (await read(db, emp))["entries"]
    assert entry["type"] == "credential.shared"
    assert entry["data"]["credential"] == issued(cid).credential
    assert (entry["data"]["definition_id"], entry["data"]["jurisdiction"],
            entry["data"]["status"]) == ("data", "CA-ON", "revoked")
    assert await view_documents(db, cid) == [issued(cid).credential]
    assert [d.event_type for d in await deliveries(db)] == ["credential.shared"]


async def test_a_choice_without_the_document_uses_the_one_the_view_already_has(
        db: Any) -> None:
    """A registry before issue 12 wave 17 sends no document: a view that has one (shown
    before) shares again with it; a view without one waits for a choice that brings it."""
    emp, _ = await employer(db)
    await subscribe(db, emp)
    known, waiting = uuid.uuid4(), uuid.uuid4()
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     shown(known), visibility(waiting, "public"))
    assert [e["data"]["credential_id"] for e in (await read(db, emp))["entries"]] == [
        str(known)]
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(known, "private"), visibility(known, "employers"))
    assert kinds(await read(db, emp)) == [
        "credential.shared", "credential.unshared", "credential.shared"]
    assert (await read(db, emp))["entries"][2]["data"]["credential"] == \
        issued(known).credential

    # An older choice arriving late never overrides a newer one, but its document is kept:
    # the newer choice (public) now shares the credential.
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     shown(waiting, at=now() - timedelta(hours=1)))
    (last,) = [e for e in (await read(db, emp))["entries"]
               if e["data"]["credential_id"] == str(waiting)]
    assert last["type"] == "credential.shared"
    assert last["data"]["credential"] == issued(waiting).credential


async def test_one_batch_of_new_known_and_repeated_credentials_tells_each_employer_once(
        db: Any) -> None:
    """A new credential's view is written whole (private: nobody is told), one whose
    holder's choice came first is shared, and the same credential again under another
    ce_id, in the same batch or later, changes nothing."""
    emp, _ = await employer(db)
    await subscribe(db, emp)
    new, chosen = uuid.uuid4(), uuid.uuid4()
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(chosen, "public"))
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued,
                     issued(new), issued(chosen), issued(new), issued(chosen))
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(new),
                     issued(chosen))
    (entry,) = (await read(db, emp))["entries"]
    assert (entry["type"], entry["data"]["credential"]["id"]) == (
        "credential.shared", f"urn:uuid:{chosen}")
    views = {r.credential_id: r for r in await db.rows(
        "SELECT * FROM employer_credential_view")}
    assert views[new].document == issued(new).credential
    assert (views[new].visibility, views[new].shared_with, views[new].skills) == (
        "private", [], ["esco", "numeracy"])
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(new))  # its holder shows it to employers later: shared then
    assert [e["data"]["credential"]["id"] for e in (await read(db, emp))["entries"]] == [
        f"urn:uuid:{chosen}", f"urn:uuid:{new}"]


async def test_filters_choose_what_a_subscriber_is_told_but_a_direct_share_overrides_them(
        db: Any) -> None:
    quebec, _ = await employer(db, "Quebec only")
    await subscribe(db, quebec, jurisdictions=["CA-QC"])
    numeracy, _ = await employer(db, "Numeracy")
    await subscribe(db, numeracy, skills=["numeracy"])
    ontario = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(ontario))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(ontario))
    assert kinds(await read(db, quebec)) == []
    assert kinds(await read(db, numeracy)) == ["credential.shared"]

    direct = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(direct))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(direct, "private", [quebec]))
    assert kinds(await read(db, quebec)) == ["credential.shared"]
    assert kinds(await read(db, numeracy)) == ["credential.shared"]  # only the first one


async def test_unsharing_tells_the_employer_cancels_what_is_on_its_way_and_redacts_the_feed(
        db: Any) -> None:
    emp, _ = await employer(db)
    await subscribe(db, emp, webhook=True)
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, "private"))

    shared, unshared = (await read(db, emp))["entries"]
    assert (shared["type"], unshared["type"]) == ("credential.shared", "credential.unshared")
    assert shared["redacted"] is True and "credential" not in shared["data"]
    assert set(unshared["data"]) == {"credential_id", "credential_url", "unshared_at"}
    assert [(d.event_type, d.status) for d in await deliveries(db)] == [
        ("credential.shared", "cancelled"), ("credential.unshared", "pending")]


async def test_a_revocation_reaches_the_employers_holding_the_credential(db: Any) -> None:
    holder, _ = await employer(db, "Holder")
    await subscribe(db, holder)
    late, _ = await employer(db, "Late")  # subscribes after: never held it
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid))
    await subscribe(db, late)
    await db.consume(topics.CREDENTIAL_STATUS, on_status, CredentialStatusChanged, revoked(cid))

    page = await read(db, holder)
    assert kinds(page) == ["credential.shared", "credential.status.changed"]
    data = page["entries"][1]["data"]
    assert (data["action"], data["reason"], data["status"]) == (
        "revoke", "issued in error", "revoked")
    assert kinds(await read(db, late)) == []


async def test_a_visibility_change_by_another_learner_is_dead_lettered(db: Any) -> None:
    emp, _ = await employer(db)
    await subscribe(db, emp)
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, "public", learner="someone-else"))

    assert kinds(await read(db, emp)) == []
    (letter,) = await db.outbox(topics.dlq(topics.CREDENTIAL_VISIBILITY))
    assert letter.headers["dlq_reason"] == "the credential belongs to another learner"


async def test_an_older_choice_arriving_late_never_overrides_a_newer_one(db: Any) -> None:
    emp, _ = await employer(db)
    await subscribe(db, emp)
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    t = now()
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, "private", at=t))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, "public", at=t - timedelta(minutes=1)))
    assert kinds(await read(db, emp)) == []


async def test_the_feed_cursor_continues_where_the_last_page_stopped(db: Any) -> None:
    emp, _ = await employer(db)
    await subscribe(db, emp)
    for _ in range(3):
        cid = uuid.uuid4()
        await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
        await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility,
                         CredentialVisibilityChanged, visibility(cid))
    first = await pull_feed.page(db.engine, emp, None, 2)
    rest = await pull_feed.page(db.engine, emp, first["next_cursor"], 2)
    assert (len(first["entries"]), first["has_more"]) == (2, True)
    assert (len(rest["entries"]), rest["has_more"]) == (1, False)
    ids = [e["id"] for e in first["entries"] + rest["entries"]]
    assert len(set(ids)) == 3
    with pytest.raises(Problem) as bad:
        await pull_feed.page(db.engine, emp, "not-a-cursor!", 2)
    assert bad.value.status == 400


async def test_an_employer_over_its_feed_rate_is_told_when_to_come_back(db: Any) -> None:
    emp, _ = await employer(db)
    limiter = RateLimiter(db.engine, rate=0.5, burst=1)
    await pull_feed.read(db.engine, limiter, emp, None, 10)
    with pytest.raises(Problem) as limited:
        await pull_feed.read(db.engine, limiter, emp, None, 10)
    assert limited.value.status == 429
    assert int(limited.value.headers["Retry-After"]) >= 1


async def test_registration_approval_and_suspension_are_published_and_gate_the_key(
        db: Any) -> None:
    row = await employers.register(db.engine, EmployerCreate(
        organisation="Acme", contact_name="Bo", contact_email="bo@acme.example"))
    _, key = await employers.approve(db.engine, row.id)
    assert await EmployerKeyVerifier(db.engine).employer_for(key) == row.id
    assert await EmployerKeyVerifier(db.engine).employer_for(key + "x") is None
    with pytest.raises(Problem) as twice:
        await employers.approve(db.engine, row.id)
    assert twice.value.status == 409

    await employers.suspend(db.engine, row.id)
    assert await EmployerKeyVerifier(db.engine).employer_for(key) is None
    published = [o.body for o in await db.outbox(topics.EMPLOYERS)]
    assert [p["status"] for p in published] == ["pending", "approved", "suspended"]
    assert all("contact_email" not in p and "contact_name" not in p for p in published)
    # The key travels to the registry as its digest only: minted, then revoked.
    keys = [o.body for o in await db.outbox(topics.EMPLOYER_API_KEYS)]
    key_id, secret = key.removeprefix("mce_").split(".", 1)
    assert [(k["key_id"], k["employer_id"], k["revoked_at"] is None) for k in keys] == [
        (key_id, row.id, True), (key_id, row.id, False)]
    assert {k["secret_sha256"] for k in keys} == {hashlib.sha256(secret.encode()).hexdigest()}
    assert all(secret not in json.dumps(k) for k in keys)
    with pytest.raises(Problem) as missing:
        await employers.suspend(db.engine, "emp-nobody")
    assert missing.value.status == 404


class Endpoint:
    """The employer's webhook endpoint, behind httpx's mock transport."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return httpx.Response(self.status)


def worker(db: Any, endpoint: Endpoint, *, max_attempts: int = 3) -> WebhookWorker:
    w = WebhookWorker(db.engine, box=BOX, limiter=RateLimiter(db.engine, rate=100, burst=100),
                      policy=Policy(max_attempts, 0.0, 5), wake=asyncio.Event(),
                      on_published=lambda: None,
                      destinations=netguard.Policy(allow_loopback=True))
    w._client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))  # the network seam
    return w


async def shared_credential(db: Any) -> tuple[str, dict[str, Any]]:
    emp, _ = await employer(db)
    sub = await subscribe(db, emp, webhook=True)
    cid = uuid.uuid4()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid))
    return emp, sub


async def test_a_webhook_is_sent_signed_and_an_operator_replay_keeps_its_webhook_id(
        db: Any) -> None:
    _, sub = await shared_credential(db)
    endpoint = Endpoint()
    assert await worker(db, endpoint).deliver_due() == 1

    (request,) = endpoint.received
    payload = Webhook(sub["secret"]).verify(request.content, dict(request.headers))
    assert payload["type"] == "credential.shared"
    (d,) = await deliveries(db)
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 1, 200)

    new_id = await audit.replay_one(db.engine, d.id)
    await worker(db, endpoint).deliver_due()
    assert [r.headers["webhook-id"] for r in endpoint.received] == [d.webhook_id] * 2
    log = await audit.deliveries(db.engine, None, None, 10)
    assert [x["replay_of"] for x in log["deliveries"]] == [None, str(d.id)]
    assert log["deliveries"][1]["id"] == str(new_id)


async def test_a_webhook_endpoint_that_keeps_failing_is_dead_lettered_then_gone_disables_it(
        db: Any) -> None:
    _, sub = await shared_credential(db)
    failing = worker(db, Endpoint(503), max_attempts=2)
    await failing.deliver_due()
    await asyncio.sleep(0.01)
    await failing.deliver_due()
    (d,) = await deliveries(db)
    assert (d.status, d.attempts, d.last_status_code) == ("failed", 2, 503)
    (letter,) = await db.outbox(topics.dlq(topics.NOTIFICATIONS))
    assert letter.headers["webhook-id"] == d.webhook_id

    await audit.replay_one(db.engine, d.id)
    await worker(db, Endpoint(410)).deliver_due()
    (s,) = await db.rows("SELECT status, disabled_reason FROM employer_subscriptions")
    assert (s.status, s.disabled_reason) == ("disabled", "the endpoint answered 410 Gone")


async def test_notify_metrics_count_webhooks_delivered_retried_dead_lettered_and_disabled(
        db: Any, notify_metrics: Any) -> None:
    await shared_credential(db)
    endpoint = Endpoint(200)
    w = worker(db, endpoint, max_attempts=2)
    assert await w.deliver_due() == 1  # delivered

    async def share() -> None:
        cid = uuid.uuid4()
        await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, issued(cid))
        await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility,
                         CredentialVisibilityChanged, visibility(cid))

    await share()
    endpoint.status = 503
    assert await w.deliver_due() == 1  # failed, retried later
    await asyncio.sleep(0.01)
    assert await w.deliver_due() == 1  # its last attempt: dead-lettered
    await share()
    endpoint.status = 410
    assert await w.deliver_due() == 1  # gone: dead-lettered, the endpoint disabled

    m = await notify_metrics(webhooks=w)
    assert {k: v for k, v in m.items() if k.startswith("microcred_webhook_")
            and k.endswith("_total")} == {"microcred_webhook_delivered_total": 1,
                                          "microcred_webhook_attempts_failed_total": 1,
                                          "microcred_webhook_dead_lettered_total": 2,
                                          "microcred_webhook_endpoints_disabled_total": 1}
    assert [d.status for d in await deliveries(db)] == ["delivered", "failed", "failed"]
    (s,) = await db.rows("SELECT status FROM employer_subscriptions")
    assert s.status == "disabled"


async def test_a_credential_with_several_subjects_is_applied_with_the_rest_of_its_batch(
        db: Any) -> None:
    """VC-API callers may send several subjects: the batch is not failed, and the skills
    of every subject count for the subscriptions' filters."""
    emp, _ = await employer(db)
    await subscribe(db, emp, skills=["Teamwork"])
    several, plain = uuid.uuid4(), uuid.uuid4()
    event = issued(several)
    event.credential["credentialSubject"] = [
        {"id": "did:example:a", "achievement": {"alignment": [{"targetName": "Numeracy"}]}},
        {"id": "did:example:b", "achievement": {"alignment": [{"targetName": "Teamwork"}]}}]
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, event,
                     issued(plain))
    for cid in (several, plain):
        await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility,
                         CredentialVisibilityChanged, visibility(cid))
    entries = (await read(db, emp))["entries"]
    assert [e["data"]["credential"]["id"] for e in entries] == [f"urn:uuid:{several}"]


class _Executions:
    """Each statement the engine sends, with how many times the database runs it: an
    executemany of N parameter sets is N executions (one Bind/Execute each)."""

    def __init__(self, engine: Any) -> None:
        self.sent: list[tuple[str, int]] = []
        sa.event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, sql: str, params: Any, context: Any,
                executemany: bool) -> None:
        self.sent.append((sql, len(params) if executemany else 1))

    def updates_of_views(self) -> int:
        return sum(n for sql, n in self.sent
                   if sql.lstrip().upper().startswith("UPDATE EMPLOYER_CREDENTIAL_VIEW"))

    def feed_statements(self) -> list[str]:
        """The employer feed's statements (not the consumer loop's inbox and outbox)."""
        return [sql for sql, _ in self.sent
                if not any(t in sql for t in ("INTO inbox", "INTO outbox"))]


async def test_a_batch_updates_its_employer_views_in_one_statement(db: Any) -> None:
    """Issue 12: each credential of a batch cost one UPDATE of its view (an executemany
    of N statements, each carrying its ~5 KB document); now a batch is one statement, for
    documents, visibility choices and status changes alike, and writes the same rows. New
    credentials' views are written whole by one INSERT: no lock, no read, no update."""
    emp, _ = await employer(db)
    await subscribe(db, emp)
    cids = [uuid.uuid4() for _ in range(12)]
    executions = _Executions(db.engine)
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued,
                     *(issued(c, learner=f"learner-{i}") for i, c in enumerate(cids)))
    (written,) = executions.feed_statements()
    assert written.lstrip().startswith("INSERT INTO employer_credential_view"), written
    executions.sent.clear()
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     *(visibility(c, learner=f"learner-{i}") for i, c in enumerate(cids)))
    assert executions.updates_of_views() == 1, executions.sent
    executions.sent.clear()
    await db.consume(topics.CREDENTIAL_STATUS, on_status, CredentialStatusChanged,
                     *(revoked(c) for c in cids))
    assert executions.updates_of_views() == 1, executions.sent
    rows = await db.rows("SELECT * FROM employer_credential_view ORDER BY learner_key")
    assert len(rows) == 12
    for i, r in enumerate(sorted(rows, key=lambda r: int(r.learner_key.split("-")[1]))):
        assert (r.credential_id, r.learner_key, r.provider_id, r.definition_id) == (
            cids[i], f"learner-{i}", "lakeshore-college", "data")
        assert (r.jurisdiction, r.skills, r.status, r.visibility, r.shared_with) == (
            "CA-ON", ["esco", "numeracy"], "revoked", "employers", [])
        assert r.document == issued(cids[i]).credential
        assert r.visibility_changed_at is not None
    assert kinds(await read(db, emp)) == ["credential.shared"] * 12 + [
        "credential.status.changed"] * 12


async def test_the_document_is_kept_as_sent_and_a_reformatted_redelivery_is_still_a_duplicate(
        db: Any) -> None:
    """The view's document is taken from the record's bytes (not serialised once more):
    whatever their spacing and key order, it is the credential that was sent, and the inbox
    digest is what it was (type, source and the event as parsed), so a producer re-sending
    the same event differently formatted under its ce_id is a redelivery, not a conflict."""
    cid = uuid.uuid4()
    event = issued(cid)
    event.credential["credentialSubject"]["note"] = "é ✓ \"quoted\" \\ 😀"
    event.credential["credentialSubject"]["score"] = 12345678901234567890
    data = json.loads(event.model_dump_json())
    pretty = json.dumps(dict(reversed(list(data.items()))), indent=2).encode()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, event,
                     ce_ids=["ce-1"], values=[pretty])
    (view,) = await db.rows("SELECT document FROM employer_credential_view")
    assert view.document == data["credential"]
    (inbox,) = await db.rows("SELECT digest FROM inbox WHERE ce_id = 'ce-1'")
    said = f"{CredentialIssued.ce_type}\n/tests\n".encode() + event.model_dump_json().encode()
    assert bytes(inbox.digest) == hashlib.sha256(said).digest()
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, event,
                     ce_ids=["ce-1"])  # compact this time
    assert await db.outbox() == []  # no dead letter: a redelivery, dropped


async def test_a_view_keeps_its_document_as_issued_compressed_in_its_row(db: Any) -> None:
    """Issue 12: the view's document was parsed into jsonb (the whole event, to take its
    member) and, ~4.5 KB, moved out to the TOAST table. It is now the credential's text as
    the event carried it, compressed in its row: the employer still receives the same
    credential, now even in the issuer's key order (jsonb reordered keys)."""
    emp, _ = await employer(db)
    await subscribe(db, emp, webhook=True)
    cid, learner = uuid.uuid4(), "k4HnXqT0sVb9Jw2LmPz7YcR1uE8aDf3Gi6Ko5Nt-Q_w"  # a real key's size
    document = dict(issued(cid).credential)
    subject = document.pop("credentialSubject")
    document["evidence"] = [  # a real credential's size: ~4 KB, not all of it repetitive
        {"id": f"https://lakeshore.example/evidence/{uuid.uuid4()}", "type": ["Evidence"],
         "name": f"Assessment part {i}"} for i in range(45)]
    event = issued(cid, learner=learner).model_copy(  # keys not in jsonb's order
        update={"credential": {"credentialSubject": subject, **document}})
    sent = event.model_dump_json()
    member = json.dumps(json.loads(sent)["credential"], separators=(",", ":"))
    assert len(member) > 4000
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, event,
                     values=[sent.encode()])
    (stored,) = await db.rows(
        "SELECT CAST(document AS text) AS text, pg_column_size(document) AS size, "
        "(SELECT CAST(attstorage AS text) FROM pg_attribute WHERE attrelid = CAST("
        "'employer_credential_view' AS regclass) AND attname = 'document') AS storage "
        "FROM employer_credential_view")
    assert stored.text == member  # the text as sent, not parsed and written out again
    assert stored.storage == "m" and stored.size < len(member) * 3 // 4  # compressed, in the row
    (toast,) = await db.rows("SELECT CAST(reltoastrelid AS regclass) AS name FROM pg_class "
                             "WHERE relname = 'employer_credential_view'")
    (chunks,) = await db.rows(f"SELECT count(*) AS n FROM {toast.name}")
    assert chunks.n == 0  # nothing of the row (not its key, not its skills) moved out
    await db.consume(topics.CREDENTIAL_VISIBILITY, on_visibility, CredentialVisibilityChanged,
                     visibility(cid, learner=learner))
    (delivery,) = await deliveries(db)
    shared = json.loads(bytes(delivery.body))["data"]["credential"]
    assert shared == event.credential
    assert list(shared) == ["credentialSubject", "id", "issuer", "evidence"]
    page = await read(db, emp)
    assert kinds(page) == ["credential.shared"]
    assert page["entries"][0]["data"]["credential"] == event.credential


async def test_a_view_takes_the_credential_the_event_was_read_with_whatever_its_text(
        db: Any) -> None:
    """Issue 12, wave 16: the document is cut out of the event's text when the event is
    written as issuance writes it (the database then checks ~4 KB once instead of parsing
    the whole event twice). An event that repeats its `credential` member, plainly or with
    an escaped name, keeps the last one, as the event's parser does; the text cut out of an
    event as issuance writes it is exactly its member."""
    cids = [uuid.uuid4() for _ in range(3)]
    plain = issued(cids[0])
    sent = plain.model_dump_json()
    assert feed.document_text(sent, plain) == json.dumps(
        json.loads(sent)["credential"], separators=(",", ":"), ensure_ascii=False)
    values = [sent.encode()]
    for cid, name in zip(cids[1:], ('"credential"', '"\\u0063redential"'), strict=True):
        text = issued(cid).model_dump_json()
        twice = text[:-1] + f',{name}:{{"id":"urn:uuid:{cid}","second":true}}}}'
        assert feed.document_text(twice, CredentialIssued.model_validate_json(twice)) is None
        values.append(twice.encode())
    events = [CredentialIssued.model_validate_json(v) for v in values]
    await db.consume(topics.CREDENTIALS_ISSUED, on_issued, CredentialIssued, *events,
                     values=values)
    rows = {r.credential_id: r.document for r in await db.rows(
        "SELECT credential_id, document FROM employer_credential_view")}
    assert rows[cids[0]] == plain.credential
    for cid in cids[1:]:
        assert rows[cid] == {"id": f"urn:uuid:{cid}", "second": True}
