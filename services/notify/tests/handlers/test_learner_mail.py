"""Learner mail against a real database: what is owed to whom, and what delivery does."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_devstack import free_port
from microcred_notify.learner_mail import handlers as mail
from microcred_notify.learner_mail.delivery import Deliverer
from microcred_notify.learner_mail.domain import Mail
from microcred_notify.learner_mail.smtp import SmtpPool
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialRegistered, CredentialStatusChanged
from microcred_shared.contract.events_learners import LearnerSignInRequested, WalletTxCodeIssued
from microcred_shared.db import make_engine, unavailable
from microcred_testkit.backbone import SmtpRecorder


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


REGISTERED, STATUS, SIGNIN = (topics.CREDENTIALS_REGISTERED, topics.CREDENTIAL_STATUS,
                              topics.LEARNER_SIGNIN)


def registered(credential_id: uuid.UUID | None = None, *, email_: str | None = "ada@example.org",
               language: str = "en", linkedin: str | None = None) -> CredentialRegistered:
    return CredentialRegistered(
        credential_id=credential_id or new_id(), provider_id="lakeshore-college",
        learner_key="learner-1", learner_email=email_, learner_name="Ada",
        learner_language=language, title="Data Analysis",
        url="https://registry.example/v1/credentials/abc", registered_at=now(),
        linkedin_url=linkedin)


def status(credential_id: uuid.UUID, action: str = "revoke") -> CredentialStatusChanged:
    return CredentialStatusChanged(
        credential_id=credential_id, provider_id="lakeshore-college", learner_key="learner-1",
        status={"revoke": "revoked", "suspend": "suspended"}.get(action, "active"),
        action=action, reason="issued in error", changed_at=now())


def signin(*, expires_in: timedelta = timedelta(minutes=15)) -> LearnerSignInRequested:
    return LearnerSignInRequested(request_id=new_id(), learner_key="learner-1",
                                  email="ada@example.org", language="fr",
                                  link="https://registry.example/learner/signin?t=SECRET",
                                  expires_at=now() + expires_in)


class FakePool:
    """The SMTP seam: keeps what it was asked to send, or fails every send (or those to the
    recipients in `refused`)."""

    def __init__(self, fail: bool = False, refused: frozenset[str] = frozenset()) -> None:
        self.sent: list[Mail] = []
        self.fail, self.refused = fail, refused
        # The mails whose envelope rode with an earlier one's content, and those given back.
        self.staged: list[Mail] = []
        self.released: list[Mail] = []

    async def send(self, m: Mail, then: Mail | None = None) -> None:
        if self.fail or m.recipient in self.refused:
            raise ConnectionRefusedError("relay down")
        self.sent.append(m)
        if then is not None:
            self.staged.append(then)

    def release(self, m: Mail) -> None:
        self.released.append(m)

    async def close(self) -> None:
        pass


def deliverer(db: Any, pool: FakePool, *, max_attempts: int = 3) -> Deliverer:
    return Deliverer(db.engine, pool, sender="credentials@microcred.local",
                     max_attempts=max_attempts, retry_base=0.0, wake=asyncio.Event(),
                     on_published=lambda: None)


def text_of(m: Mail) -> tuple[str, str]:
    msg = email.message_from_bytes(m.raw, policy=email.policy.default)
    return str(msg["Subject"]), msg.get_content()


async def notifications(db: Any) -> list[Any]:
    return await db.rows("SELECT * FROM notifications ORDER BY created_at, kind")


async def test_a_registered_credential_owes_its_learner_one_mail_even_if_registered_twice(
        db: Any) -> None:
    cid = new_id()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, registered(cid))
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, registered(cid))

    rows = await notifications(db)
    assert [(r.credential_id, r.kind, r.recipient, r.status) for r in rows] == [
        (cid, "credential-issued", "ada@example.org", "pending")]
    assert rows[0].message_id == f"<{rows[0].id}@microcred.local>"


async def test_a_credential_without_a_mailbox_owes_nothing(db: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered,
                     registered(email_=None))
    assert await notifications(db) == []
    assert await db.outbox() == []


async def test_a_redelivered_record_is_applied_once(db: Any) -> None:
    e = registered()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, e, ce_ids=["ce-1"])
    await db.execute("DELETE FROM notifications")  # would be owed again if reapplied
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, e, ce_ids=["ce-1"])
    assert await notifications(db) == []


async def test_a_revocation_owes_the_learner_a_mail_with_the_reason(db: Any) -> None:
    cid = new_id()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, registered(cid))
    await db.consume(STATUS, mail.on_status_changed, CredentialStatusChanged, status(cid))

    rows = await notifications(db)
    assert [r.kind.split(":")[0] for r in rows] == ["credential-issued", "status-revoke"]
    assert rows[1].recipient == "ada@example.org" and rows[1].detail == "issued in error"

    pool = FakePool()
    assert await deliverer(db, pool).deliver_due() == 2
    subjects = sorted(text_of(m)[0] for m in pool.sent)
    assert subjects == ["Your micro-credential was revoked: Data Analysis",
                        "Your micro-credential: Data Analysis"]


async def test_a_status_change_of_a_credential_never_mailed_owes_nothing(db: Any) -> None:
    await db.consume(STATUS, mail.on_status_changed, CredentialStatusChanged, status(new_id()))
    assert await notifications(db) == []


async def test_delivery_sends_in_the_learners_language_and_publishes_delivered(db: Any) -> None:
    cid = new_id()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered,
                     registered(cid, language="fr"))
    pool = FakePool()
    assert await deliverer(db, pool).deliver_due() == 1

    (sent,) = pool.sent
    subject, body = text_of(sent)
    assert subject == "Votre microcertification : Data Analysis"
    assert "https://registry.example/learner" in body
    (row,) = await notifications(db)
    assert (row.status, row.attempts) == ("delivered", 1)
    (published,) = await db.outbox(topics.NOTIFICATIONS)
    assert published.headers["ce_type"] == "ca.microcred.notification.delivered.v1"
    assert published.body["credential_id"] == str(cid)
    assert await deliverer(db, pool).deliver_due() == 0  # nothing is sent twice


async def test_the_issue_mail_carries_the_linkedin_link_the_registry_made(db: Any) -> None:
    link = ("https://www.linkedin.com/profile/add?startTask=CERTIFICATION_NAME&name=Data+"
            "Analysis&certId=abc")
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered,
                     registered(linkedin=link), registered(language="fr", linkedin=link),
                     registered())
    pool = FakePool()
    assert await deliverer(db, pool).deliver_due() == 3
    bodies = sorted((text_of(sent)[1] for sent in pool.sent), key=len)
    assert "linkedin" not in bodies[0].lower()  # a registration without a link
    english = next(b for b in bodies if "Add it to your LinkedIn profile" in b)
    french = next(b for b in bodies if "Ajoutez-la à votre profil LinkedIn" in b)
    for body in (english, french):
        assert link in body.split()


async def test_an_undeliverable_mail_is_retried_then_failed_and_dead_lettered(db: Any) -> None:
    cid = new_id()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, registered(cid))
    down = deliverer(db, FakePool(fail=True), max_attempts=2)

    assert await down.deliver_due() == 1
    (row,) = await notifications(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "relay down" in row.last_error
    assert await db.outbox() == []  # a retry publishes nothing

    await asyncio.sleep(0.01)  # retry_base 0: due again at once
    assert await down.deliver_due() == 1
    (row,) = await notifications(db)
    assert (row.status, row.attempts) == ("failed", 2)
    letter, failed = await db.outbox()
    assert letter.topic == topics.dlq(topics.NOTIFICATIONS)
    assert letter.headers["dlq_reason"].startswith("undeliverable after 2 attempts")
    assert letter.headers["dlq_topic"] == REGISTERED
    assert json.loads(letter.payload)["credential_id"] == str(cid)  # the original event
    assert failed.headers["ce_type"] == "ca.microcred.notification.failed.v1"


async def test_notify_metrics_count_mails_delivered_retried_and_dead_lettered(
        db: Any, notify_metrics: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered,
                     registered(), registered(email_="bo@example.org"))
    d = deliverer(db, FakePool(refused=frozenset({"bo@example.org"})), max_attempts=2)
    before = await notify_metrics(deliverer=d)
    assert before["microcred_mail_delivered_total"] == 0

    assert await d.deliver_due() == 2  # Ada's delivered, Bo's refused: retried later
    await asyncio.sleep(0.01)
    assert await d.deliver_due() == 1  # Bo's last attempt: dead-lettered

    after = await notify_metrics(deliverer=d)
    assert {k: v for k, v in after.items() if k.startswith("microcred_mail_")
            and k.endswith("_total")} == {"microcred_mail_delivered_total": 1,
                                          "microcred_mail_attempts_failed_total": 1,
                                          "microcred_mail_dead_lettered_total": 1}
    assert [r.status for r in await notifications(db)] == ["delivered", "failed"]


async def test_a_signin_link_is_mailed_but_never_kept_in_the_source_payload(db: Any) -> None:
    e = signin()
    await db.consume(SIGNIN, mail.on_learner_messages, LearnerSignInRequested, e)

    (row,) = await notifications(db)
    assert (row.kind, row.credential_id, row.url) == ("learner-signin", e.request_id, e.link)
    assert b"SECRET" not in bytes(row.source_payload)
    pool = FakePool()
    await deliverer(db, pool).deliver_due()
    subject, body = text_of(pool.sent[0])
    assert subject == "Votre lien de connexion microcred"
    assert e.link in body and "15 minutes" in body

    # The next batch blanks the spent link.
    await db.consume(SIGNIN, mail.on_learner_messages, LearnerSignInRequested,
                     signin(expires_in=-timedelta(seconds=1)))
    (row,) = await notifications(db)
    assert row.url == ""


async def test_an_expired_signin_link_is_not_mailed(db: Any) -> None:
    await db.consume(SIGNIN, mail.on_learner_messages, LearnerSignInRequested,
                     signin(expires_in=-timedelta(seconds=1)))
    assert await notifications(db) == []


async def test_a_record_of_the_wrong_type_is_dead_lettered_not_mailed(db: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, signin())
    assert await notifications(db) == []
    (letter,) = await db.outbox()
    assert letter.topic == topics.dlq(REGISTERED)


# Delivery against failures and a second instance. Each mail is recorded as soon as the
# relay accepts it, so what a database failure can double is bounded by the pool size.

CONNECTIONS = 4


def learners(n: int) -> list[CredentialRegistered]:
    return [registered(email_=f"learner{i}@example.org") for i in range(n)]


class SlowPool(FakePool):
    """A relay that takes a moment per mail (so sends overlap, as on the real pool), and
    can run `on_send` once, after accepting the `at`-th mail and before answering."""

    def __init__(self, delay: float = 0.005, *, at: int = 0,
                 on_send: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.delay, self.at, self.on_send = delay, at, on_send

    async def send(self, m: Mail, then: Mail | None = None) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append(m)
        if then is not None:
            self.staged.append(then)
        if self.on_send is not None and len(self.sent) == self.at:
            await self.on_send()


def mail_deliverer(engine: AsyncEngine, pool: FakePool, *,
                   lease: timedelta = timedelta(seconds=60)) -> Deliverer:
    return Deliverer(engine, pool, sender="credentials@microcred.local", max_attempts=3,
                     retry_base=0.0, wake=asyncio.Event(), on_published=lambda: None,
                     connections=CONNECTIONS, lease=lease)


async def deliver_until_done(d: Deliverer, db: Any) -> None:
    async def pending() -> int:
        (row,) = await db.rows("SELECT count(*) AS n FROM notifications "
                               "WHERE status <> 'delivered'")
        return int(row.n)

    async with asyncio.timeout(20):
        while await pending():
            if not await d.deliver_due():
                await asyncio.sleep(0.05)


def message_ids(*pools: FakePool) -> Counter[str]:
    return Counter(email.message_from_bytes(m.raw)["Message-ID"] for p in pools for m in p.sent)


async def test_a_database_failure_mid_round_stops_the_round_and_doubles_only_mails_in_flight(
        db: Any, pg_server: str) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, *learners(40))
    name = db.engine.url.database
    admin = await asyncpg.connect(pg_server)

    at_failure = 0

    async def database_dies() -> None:
        # A real outage for this database: its sessions are killed and new ones refused.
        nonlocal at_failure
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1", name)
        at_failure = len(pool.sent)

    pool = SlowPool(at=10, on_send=database_dies)
    d = mail_deliverer(db.engine, pool, lease=timedelta(seconds=1))
    try:
        # The database's error: SQLAlchemy's, or the driver's for a statement on the
        # driver's own connection that the server ended (no ping at checkout: ADR 32).
        with pytest.raises(Exception) as failed:  # noqa: PT011 (judged just below)
            await d.deliver_due()
        assert unavailable(failed.value) or "not currently accepting" in str(failed.value)
        # The round stopped: after the failure, only the other senders' mails then in
        # flight went out (the 10th sender's was already counted).
        assert at_failure <= len(pool.sent) <= at_failure + CONNECTIONS - 1 < 40
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    # The database is back: the rest of the round is retried once its lease has passed.
    await deliver_until_done(d, db)
    sent = message_ids(pool)
    assert {str(m.recipient) for m in pool.sent} == {f"learner{i}@example.org"
                                                     for i in range(40)}
    twice = [mid for mid, n in sent.items() if n > 1]
    assert 1 <= len(twice) <= CONNECTIONS  # the 10th at least: its record was lost
    assert max(sent.values()) == 2
    rows = await notifications(db)
    assert {r.status for r in rows} == {"delivered"} and len(rows) == 40
    delivered = [o.body["notification_id"] for o in await db.outbox(topics.NOTIFICATIONS)]
    assert sorted(delivered) == sorted(str(r.id) for r in rows)  # one event per mail


async def test_two_instances_never_send_the_same_mail(db: Any, monkeypatch: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, *learners(60))
    claims: list[int] = []
    claim = Deliverer._claim

    async def counted(self: Deliverer, conn: Any, limit: int, driver: Any) -> list[Any]:
        rows = await claim(self, conn, limit, driver)
        claims.append(len(rows))
        return rows

    monkeypatch.setattr(Deliverer, "_claim", counted)
    other_engine = make_engine(db.engine.url.render_as_string(hide_password=False),
                               pool_size=2)
    first, second = SlowPool(delay=0.01), SlowPool(delay=0.01)
    try:
        a, b = mail_deliverer(db.engine, first), mail_deliverer(other_engine, second)

        async def drain(d: Deliverer) -> None:
            while await d.deliver_due(limit=10):
                pass

        await asyncio.gather(drain(a), drain(b))
    finally:
        await other_engine.dispose()

    sent = message_ids(first, second)
    assert len(sent) == 60 and set(sent.values()) == {1}
    assert first.sent and second.sent  # both took part
    assert max(claims) == 10 and sum(claims) == 60  # a claim takes what it asked, no more
    assert {r.status for r in await notifications(db)} == {"delivered"}


class JitteryPool(FakePool):
    """A relay whose answers take 1-8 ms, each mail its own time (as on a real relay)."""

    def __init__(self) -> None:
        super().__init__()
        self._delays = itertools.cycle([0.004, 0.001, 0.008, 0.002, 0.006, 0.003, 0.005])

    async def send(self, m: Mail, then: Mail | None = None) -> None:
        await asyncio.sleep(next(self._delays))
        await super().send(m, then)


async def test_the_mails_a_round_sends_together_are_recorded_together(db: Any,
                                                                     monkeypatch: Any) -> None:
    """Issue 12: each recorded group is one statement, one commit and one WAL flush. The
    group commit waits for the mails still on their way, so the senders' outcomes are
    recorded together: 40 mails on 4 connections, 10 groups of 4 (they were 1.8 mails
    on average, by whichever sender finished first)."""
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, *learners(40))
    groups: list[int] = []
    record = Deliverer._record

    async def counted(self: Deliverer, conn: Any, outcomes: list[Any], driver: Any = None
                      ) -> bool:
        groups.append(len(outcomes))
        return await record(self, conn, outcomes, driver)

    monkeypatch.setattr(Deliverer, "_record", counted)
    pool = JitteryPool()
    assert await mail_deliverer(db.engine, pool).deliver_due() == 40
    assert groups == [CONNECTIONS] * 10
    assert len(message_ids(pool)) == 40
    assert {r.status for r in await notifications(db)} == {"delivered"}


class SlowRelay(SmtpRecorder):
    """aiosmtpd that takes `delay` seconds to accept the mails to `slow`; `fast` is set
    (on the test's loop) once it accepted `fast_count` others."""

    def __init__(self, port: int, slow: str, delay: float, fast_count: int) -> None:
        super().__init__(port)
        self.slow, self.delay, self.fast_count = slow, delay, fast_count
        self.fast = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.slow in envelope.rcpt_tos:
            await asyncio.sleep(self.delay)
        reply = await super().handle_DATA(server, session, envelope)
        if sum(m["To"] != self.slow for m in self.messages) >= self.fast_count:
            self._loop.call_soon_threadsafe(self.fast.set)
        return reply


async def test_a_mail_owed_mid_round_goes_out_without_waiting_for_the_rounds_slowest_mail(
        db: Any) -> None:
    """Issue 12 (latency below capacity): a row committed while a round is in flight is
    claimed when its commit wakes the worker and sent by a free connection, not after the
    round's last mail and the next claim. Real SMTP (aiosmtpd) and the real pool."""
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered,
                     *learners(3), registered(email_="slow@example.org"))
    relay = SlowRelay(free_port(), "slow@example.org", 2.0, fast_count=3).start()
    pool = SmtpPool("127.0.0.1", relay.controller.port, CONNECTIONS)
    wake = asyncio.Event()
    d = Deliverer(db.engine, pool, sender="credentials@microcred.local", max_attempts=3,
                  retry_base=0.0, wake=wake, on_published=lambda: None,
                  connections=CONNECTIONS)
    try:
        round_ = asyncio.ensure_future(d.deliver_due())
        async with asyncio.timeout(5):
            await relay.fast.wait()  # the fast three are in; the slow one is not
        await db.consume(REGISTERED, mail.on_registered, CredentialRegistered,
                         registered(email_="late@example.org"))
        wake.set()  # as the consumer's commit does (`Owed.committed`)
        claimed = await round_
        await d.deliver_due()  # what the round left, if anything: nothing is
    finally:
        await pool.close()
        relay.stop()

    received = [m["To"] for m in relay.messages]
    assert sorted(received) == sorted([*(f"learner{i}@example.org" for i in range(3)),
                                       "slow@example.org", "late@example.org"])
    assert received.index("late@example.org") < received.index("slow@example.org")
    at = {r.recipient: r.delivered_at for r in await notifications(db)}
    assert at["late@example.org"] < at["slow@example.org"]  # recorded before it, too
    assert claimed == 5  # by the round in flight


async def test_a_round_sends_nothing_once_half_its_lease_is_gone_and_hands_the_rest_back(
        db: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, *learners(20))
    slow = SlowPool(delay=0.1)
    d = mail_deliverer(db.engine, slow, lease=timedelta(seconds=0.6))

    assert await d.deliver_due() == 20
    # 0.3 s of sending, four at a time: the rest would have run past the lease.
    assert 0 < len(slow.sent) <= 3 * CONNECTIONS
    rows = await notifications(db)
    waiting = [r for r in rows if r.status == "pending"]
    assert len(waiting) == 20 - len(slow.sent)
    assert all(r.next_attempt_at <= now() and r.attempts == 0 for r in waiting)  # due at once

    other = SlowPool(delay=0)
    await deliver_until_done(mail_deliverer(db.engine, other), db)
    sent = message_ids(slow, other)
    assert len(sent) == 20 and set(sent.values()) == {1}


async def test_a_stop_mid_round_records_what_was_sent_and_hands_the_rest_back(db: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, *learners(30))
    d: Deliverer

    async def stop() -> None:
        d.stop()

    pool = SlowPool(at=5, on_send=stop)
    d = mail_deliverer(db.engine, pool)
    assert await d.deliver_due() == 30
    assert 5 <= len(pool.sent) < 5 + CONNECTIONS
    delivered = await db.rows("SELECT id FROM notifications WHERE status = 'delivered'")
    assert len(delivered) == len(pool.sent)

    after_restart = FakePool()
    await deliver_until_done(mail_deliverer(db.engine, after_restart), db)
    sent = message_ids(pool, after_restart)
    assert len(sent) == 30 and set(sent.values()) == {1}


# --- wallets (ADR 31) -------------------------------------------------------------------------

WALLET = ("https://lcw.app/request.html?issuer=registry.example&auth_type=bearer&challenge=c1"
          "&vc_request_url=https%3A%2F%2Fregistry.example%2Fexchanges%2Fx1")
WALLET_QR = "https://registry.example/exchanges/x1/qr.png"


@pytest.mark.parametrize(("language", "said"), [
    ("en", "Learner Credential Wallet, choose Add credential"),
    ("fr", "Dans le Learner Credential Wallet, choisissez Ajouter un titre")])
async def test_the_issue_mail_carries_the_wallet_link_and_its_qr_code_in_the_learners_language(
        db: Any, language: str, said: str) -> None:
    e = registered(language=language).model_copy(update={
        "wallet_url": WALLET, "wallet_qr_url": WALLET_QR})
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, e)
    pool = FakePool()
    await deliverer(db, pool).deliver_due()
    _, body = text_of(pool.sent[0])
    assert said in body and WALLET in body and WALLET_QR in body
    # The mail's own links open the pages in its language.
    assert ("/learner?lang=fr" in body) == (language == "fr")


def tx_code(credential_id: uuid.UUID, *, language: str = "fr",
            expires_in: timedelta = timedelta(minutes=10)) -> WalletTxCodeIssued:
    return WalletTxCodeIssued(offer_id=new_id(), credential_id=credential_id,
                              learner_key="learner-1", language=language, tx_code="482913",
                              expires_at=now() + expires_in)


async def test_a_wallet_transaction_code_goes_in_a_mail_of_its_own_and_is_then_forgotten(
        db: Any) -> None:
    cid = new_id()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, registered(cid))
    pool = FakePool()
    await deliverer(db, pool).deliver_due()
    e = tx_code(cid)
    await db.consume(SIGNIN, mail.on_learner_messages, WalletTxCodeIssued, e)
    await deliverer(db, pool).deliver_due()

    issue, code = pool.sent
    assert "482913" not in text_of(issue)[1]
    subject, body = text_of(code)
    # To the address the credential was mailed to, in the language of the page it was
    # asked from (French here, the issue mail was English), apart from the offer.
    assert code.recipient == "ada@example.org"
    assert subject == "Le code de transaction pour votre portefeuille : Data Analysis"
    assert "482913" in body and "openid-credential-offer" not in body
    row = next(r for r in await notifications(db) if r.kind.startswith("wallet-tx-code:"))
    assert b"482913" not in bytes(row.source_payload)

    # The next batch on the topic forgets the code that was sent.
    await db.consume(SIGNIN, mail.on_learner_messages, WalletTxCodeIssued,
                     tx_code(cid, expires_in=-timedelta(seconds=1)))
    row = next(r for r in await notifications(db) if r.kind.startswith("wallet-tx-code:"))
    assert (row.status, row.detail) == ("delivered", "")


async def test_a_transaction_code_for_a_credential_never_mailed_is_not_sent(db: Any) -> None:
    await db.consume(SIGNIN, mail.on_learner_messages, WalletTxCodeIssued, tx_code(new_id()))
    assert await notifications(db) == []


async def test_a_round_that_stops_hands_back_the_mails_it_had_staged(db: Any) -> None:
    """Each sender takes its next mail early (its envelope rides with the current content);
    a round that stops gives those back, unsent, and the next round sends each once."""
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, *learners(30))

    async def stop() -> None:
        d.stop()

    pool = SlowPool(at=8, on_send=stop)
    d = mail_deliverer(db.engine, pool)
    await d.deliver_due()
    assert 8 <= len(pool.sent) < 30 and pool.staged
    assert pool.released and not {m.recipient for m in pool.released} & {
        m.recipient for m in pool.sent}
    d._stopping = False  # the next round (as after a restart), due at once: not leased
    await deliver_until_done(d, db)
    assert sorted(m.recipient for m in pool.sent) == sorted(f"learner{i}@example.org"
                                                            for i in range(30))


# --- the credential mail handed to the delivery loop (ADR 4, issue 12) ---------------------


class Handed:
    """The delivery loop's side of the hand-off, as `main.build` wires it: what reached it."""

    def __init__(self, d: Deliverer | None = None) -> None:
        self.d = d
        self.rows: list[Any] = []

    def __call__(self, rows: list[Any], deadline: float) -> None:
        self.rows.extend(rows)
        if self.d is not None:
            self.d.handoff.hand(rows, deadline)


def handing(hand: Handed, *, lease: float = 60.0,
            fails_for: str | None = None) -> Callable[..., Awaitable[dict[int, str]]]:
    """notify's credentials.registered handler as subscribed, optionally followed by a step
    that fails for one recipient (so the batch is redone item by item in savepoints)."""

    async def handler(conn: Any, items: list[Any]) -> dict[int, str]:
        refused = await mail.on_registered(conn, items, hand=hand, lease=lease)
        if fails_for and any(i.event.learner_email == fails_for for i in items):
            raise RuntimeError("a later step of the batch failed")
        return refused

    return handler


async def test_a_registered_credential_is_handed_to_the_delivery_loop_and_mailed_without_a_claim(
        db: Any) -> None:
    pool = FakePool()
    d = mail_deliverer(db.engine, pool)
    hand = Handed(d)
    await db.consume(REGISTERED, handing(hand), CredentialRegistered, *learners(3))

    rows = await notifications(db)
    assert sorted(r.id for r in hand.rows) == sorted(r.id for r in rows)
    # Each handed row is the stored row, column for column (but the outcome's two columns,
    # still empty), as a claim would have read it.
    stored = {r.id: r._asdict() for r in rows}
    for r in hand.rows:
        assert set(stored[r.id]) - set(vars(r)) <= {"last_error", "delivered_at"}
        assert vars(r) == {k: stored[r.id][k] for k in vars(r)}
    # Leased to this instance: no other loop's claim takes them.
    assert all(r.status == "pending" and r.next_attempt_at > now() + timedelta(seconds=30)
               for r in rows)
    other = FakePool()
    assert await mail_deliverer(db.engine, other).deliver_due() == 0 and not other.sent

    assert await d.deliver_due(claim=False) == 3
    assert sorted(m.recipient for m in pool.sent) == [f"learner{i}@example.org"
                                                      for i in range(3)]
    assert {r.status for r in await notifications(db)} == {"delivered"}
    assert set(message_ids(pool).values()) == {1}


async def test_a_row_rolled_back_in_its_savepoint_is_never_handed_over(db: Any) -> None:
    """The batch fails as a whole and is redone item by item: what reaches the delivery loop
    is exactly what was committed, each row once."""
    hand = Handed()
    await db.consume(REGISTERED, handing(hand, fails_for="learner1@example.org"),
                     CredentialRegistered, *learners(3))
    rows = await notifications(db)
    assert sorted(r.recipient for r in rows) == ["learner0@example.org", "learner2@example.org"]
    assert sorted(r.id for r in hand.rows) == sorted(r.id for r in rows)


async def test_rows_handed_to_a_loop_that_died_are_mailed_once_their_lease_passes(
        db: Any) -> None:
    """The crash window of the hand-off: the process dies after the commit and before the
    mail; the row waits for its lease, then any instance's claim mails it, once."""
    dead = Handed()  # the hand-off reached a process that is gone
    await db.consume(REGISTERED, handing(dead, lease=0.5), CredentialRegistered, *learners(1))
    assert len(dead.rows) == 1
    pool = FakePool()
    d = mail_deliverer(db.engine, pool)
    assert await d.deliver_due() == 0  # still leased
    await asyncio.sleep(0.6)
    assert await d.deliver_due() == 1
    assert [m.recipient for m in pool.sent] == ["learner0@example.org"]


async def test_a_stopping_loop_hands_back_the_rows_it_never_took(db: Any) -> None:
    pool = FakePool()
    d = mail_deliverer(db.engine, pool)
    await db.consume(REGISTERED, handing(Handed(d)), CredentialRegistered, *learners(2))
    d.stop()
    await d.hand_back()  # as LearnerMail.stop does once the loop ended
    assert not pool.sent
    rows = await notifications(db)
    assert all(r.status == "pending" and r.next_attempt_at <= now() for r in rows)
    after_restart = FakePool()
    await deliver_until_done(mail_deliverer(db.engine, after_restart), db)
    assert set(message_ids(after_restart).values()) == {1} and len(after_restart.sent) == 2


async def test_a_handed_row_makes_the_same_mail_as_a_claimed_one(db: Any) -> None:
    """Byte for byte but its Message-ID and Date: the handed row carries every column the
    claim read (wallet links, LinkedIn link, language)."""
    def event() -> CredentialRegistered:
        e = registered(email_="ada@example.org", language="fr",
                       linkedin="https://www.linkedin.com/profile/add?name=Data")
        return e.model_copy(update={"wallet_url": WALLET, "wallet_qr_url": WALLET_QR})

    claimed_pool, handed_pool = FakePool(), FakePool()
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, event())
    await deliver_until_done(mail_deliverer(db.engine, claimed_pool), db)
    d = mail_deliverer(db.engine, handed_pool)
    await db.consume(REGISTERED, handing(Handed(d)), CredentialRegistered, event())
    assert await d.deliver_due(claim=False) == 1

    def without_ids(m: Mail) -> list[bytes]:
        return [line for line in m.raw.split(b"\r\n")
                if not line.startswith((b"Message-ID: ", b"Date: "))]

    (claimed,), (handed,) = claimed_pool.sent, handed_pool.sent
    assert without_ids(handed) == without_ids(claimed)
    assert (handed.sender, handed.recipient, handed.utf8) == (
        claimed.sender, claimed.recipient, claimed.utf8)
    assert WALLET_QR in text_of(handed)[1]  # the wallet's QR code link made it through
