"""The issue mail's "Add to wallet" (ADR 31) on a real database: registering a mailed
credential opens a single-use wallet exchange whose deep link and QR code ride the
registration event; the QR code is served only while the exchange is open."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from microcred_registry.credentials import handlers as credentials
from microcred_registry.delivery.handlers import Exchanges, mail_exchanges
from microcred_registry.delivery.issuance import Issuance
from microcred_shared.consumer import Incoming
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import parse_envelope
from microcred_shared.contract.events import CredentialIssued, learner_key
from microcred_shared.problems import Problem

BASE = "https://registry.test"
ADA = learner_key("ada@learners.example")


def issued(*, email: str | None) -> CredentialIssued:
    cid = uuid.uuid4()
    return CredentialIssued(credential_id=cid, provider_id="lakeshore", learner_key=ADA,
                            learner_email=email, title="Data analysis",
                            issued_at=datetime(2026, 7, 1, tzinfo=UTC),
                            credential={"id": f"urn:uuid:{cid}", "credentialSubject": {}})


async def register(db: Any, *events: CredentialIssued) -> dict[str, dict[str, Any]]:
    links = partial(mail_exchanges, base_url=BASE, ttl=timedelta(days=7))
    await db.deliver(topics.CREDENTIALS_ISSUED, partial(
        credentials.on_issued, base_url=BASE, wallet_links=links), CredentialIssued,
        list(events))
    return {o["payload"]["credential_id"]: o["payload"] for o in await db.published()
            if o["topic"] == topics.CREDENTIALS_REGISTERED}


async def test_a_mailed_credential_gets_a_wallet_link_and_qr_code_that_work_once(
        db: Any) -> None:
    mailed, unmailed = issued(email="ada@learners.example"), issued(email=None)
    registered = await register(db, mailed, unmailed)
    event = registered[str(mailed.credential_id)]
    link = urlsplit(event["wallet_url"])
    assert (link.scheme, link.netloc, link.path) == ("https", "lcw.app", "/request.html")
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    exchange_url = query["vc_request_url"]
    assert exchange_url.startswith(f"{BASE}/exchanges/") and query["auth_type"] == "bearer"
    assert event["wallet_qr_url"] == exchange_url + "/qr.png"
    # Nobody to mail: no exchange is opened for a VC-API credential.
    assert registered[str(unmailed.credential_id)]["wallet_url"] is None

    exchanges = Exchanges(db.engine, BASE, Issuance(None, None), timedelta(minutes=15))
    exchange_id = uuid.UUID(exchange_url.rsplit("/", 1)[1])
    assert await exchanges.open_link(exchange_id) == event["wallet_url"]
    async with db.engine.begin() as conn:
        row = (await conn.execute(sa.text(
            "SELECT credential_id, learner_key, expires_at - created_at AS ttl "
            "FROM wallet_exchanges WHERE exchange_id = :x"), {"x": exchange_id})).one()
        assert (row.credential_id, row.learner_key, row.ttl) == (
            mailed.credential_id, ADA, timedelta(days=7))
        await conn.execute(sa.text("UPDATE wallet_exchanges SET used_at = now()"))
    with pytest.raises(Problem) as used:
        await exchanges.open_link(exchange_id)
    assert used.value.status == 409  # used: its QR code is no longer drawn


async def test_registered_in_a_plain_transaction_the_same_rows_links_and_announcement(
        db: Any) -> None:
    # Outside a consumer batch (a plain `engine.begin()`: no transaction open on the driver
    # yet) the statements go through SQLAlchemy; inside one, on the driver's connection.
    # Either way: stored as sent, once, with its wallet exchange, and announced once.
    mailed = issued(email="ada@learners.example")
    record = db.record(topics.CREDENTIALS_ISSUED, mailed)
    links = partial(mail_exchanges, base_url=BASE, ttl=timedelta(days=7))
    items = [Incoming(record, parse_envelope(record.headers), mailed, None)]
    async with db.engine.begin() as conn:
        assert await credentials.on_issued(conn, items, base_url=BASE,
                                           wallet_links=links) == {}
    [announced] = items[0].outgoing
    registered = json.loads(announced.payload)
    assert registered["credential_id"] == str(mailed.credential_id)
    assert registered["wallet_url"].startswith("https://lcw.app/request.html?")
    assert await credentials.document(db.engine, mailed.credential_id) == mailed.credential
    assert len(await db.rows("SELECT 1 FROM wallet_exchanges")) == 1

    # The same record again in a consumer batch: a redelivery, nothing new.
    assert await register(db, mailed) == {}
    assert len(await db.rows("SELECT 1 FROM credentials")) == 1
    assert len(await db.rows("SELECT 1 FROM wallet_exchanges")) == 1
