"""Learner mail against a real database: what is owed to whom, and what delivery does."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from microcred_notify.learner_mail import handlers as mail
from microcred_notify.learner_mail.delivery import Deliverer
from microcred_notify.learner_mail.domain import Mail
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialRegistered, CredentialStatusChanged
from microcred_shared.contract.events_learners import LearnerSignInRequested


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


REGISTERED, STATUS, SIGNIN = (topics.CREDENTIALS_REGISTERED, topics.CREDENTIAL_STATUS,
                              topics.LEARNER_SIGNIN)


def registered(credential_id: uuid.UUID | None = None, *, email_: str | None = "ada@example.org",
               language: str = "en") -> CredentialRegistered:
    return CredentialRegistered(
        credential_id=credential_id or new_id(), provider_id="lakeshore-college",
        learner_key="learner-1", learner_email=email_, learner_name="Ada",
        learner_language=language, title="Data Analysis",
        url="https://registry.example/v1/credentials/abc", registered_at=now())


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
    """The SMTP seam: keeps what it was asked to send, or fails every send."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Mail] = []
        self.fail = fail

    async def send(self, m: Mail) -> None:
        if self.fail:
            raise ConnectionRefusedError("relay down")
        self.sent.append(m)

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


async def test_a_signin_link_is_mailed_but_never_kept_in_the_source_payload(db: Any) -> None:
    e = signin()
    await db.consume(SIGNIN, mail.on_signin_requested, LearnerSignInRequested, e)

    (row,) = await notifications(db)
    assert (row.kind, row.credential_id, row.url) == ("learner-signin", e.request_id, e.link)
    assert b"SECRET" not in bytes(row.source_payload)
    pool = FakePool()
    await deliverer(db, pool).deliver_due()
    subject, body = text_of(pool.sent[0])
    assert subject == "Votre lien de connexion microcred"
    assert e.link in body and "15 minutes" in body

    # The next batch blanks the spent link.
    await db.consume(SIGNIN, mail.on_signin_requested, LearnerSignInRequested,
                     signin(expires_in=-timedelta(seconds=1)))
    (row,) = await notifications(db)
    assert row.url == ""


async def test_an_expired_signin_link_is_not_mailed(db: Any) -> None:
    await db.consume(SIGNIN, mail.on_signin_requested, LearnerSignInRequested,
                     signin(expires_in=-timedelta(seconds=1)))
    assert await notifications(db) == []


async def test_a_record_of_the_wrong_type_is_dead_lettered_not_mailed(db: Any) -> None:
    await db.consume(REGISTERED, mail.on_registered, CredentialRegistered, signin())
    assert await notifications(db) == []
    (letter,) = await db.outbox()
    assert letter.topic == topics.dlq(REGISTERED)
