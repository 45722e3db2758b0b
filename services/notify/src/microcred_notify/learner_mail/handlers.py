"""Use cases of the learner mail, as Kafka batch handlers: owe the learner a message
(credential issued, its status changed, a sign-in link asked for). Delivery is
`delivery.Deliverer`'s job.

A sign-in link rides the same delivery state machine as credential mail (a `notifications`
row of kind `learner-signin`, keyed by the request id in `credential_id`), so it gets the
same SMTP pool, retries and stable Message-ID. The link is a bearer secret for a few
minutes: it is kept in the row only until it is sent (later batches blank the spent ones),
never in `source_payload`, and a link that already expired is not mailed at all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_notify.learner_mail.domain import ISSUED, SIGNIN, TX_CODE, status_kind
from microcred_notify.learner_mail.models import Notification
from microcred_shared.consumer import Incoming
from microcred_shared.contract.cloudevents import encode
from microcred_shared.contract.events import CredentialRegistered, CredentialStatusChanged
from microcred_shared.contract.events_learners import (
    LearnerSignInRequested,
    WalletTxCodeIssued,
)
from microcred_shared.db import driver_in_transaction

# One cached statement per batch whatever its size: arrays in (a multi-row VALUES insert
# is recompiled for every batch size, which dominated the e2e profile). `{due}`: due at
# once (for whichever delivery loop claims it), or already leased to this instance's loop,
# which the consumer hands the rows to once they are committed (`on_registered`).
_COLUMNS = ("id, credential_id, kind, recipient, learner_name, language, title, url, detail, "
            "wallet_url, wallet_qr_url, status, attempts, next_attempt_at, message_id, "
            "traceparent, source_topic, source_payload, created_at")
_OWE = (
    f"INSERT INTO notifications ({_COLUMNS}) "
    "SELECT n, c, 'credential-issued', r, ln, lg, t, u, d, w, wq, 'pending', 0, {due}, "
    "'<' || n || '@microcred.local>', tp, st, sp, now() "
    "FROM (SELECT gen_random_uuid() AS n, * FROM unnest(CAST({cids} AS uuid[]), "
    "CAST({recipients} AS text[]), CAST({names} AS text[]), CAST({languages} AS text[]), "
    "CAST({titles} AS text[]), CAST({urls} AS text[]), CAST({details} AS text[]), "
    "CAST({wallets} AS text[]), CAST({wallet_qrs} AS text[]), "
    "CAST({traceparents} AS text[]), CAST({topics} AS text[]), CAST({payloads} AS bytea[])) "
    "AS u(c, r, ln, lg, t, u, d, w, wq, tp, st, sp)) AS x "
    "ON CONFLICT DO NOTHING")
_PARAMS = ("cids", "recipients", "names", "languages", "titles", "urls", "details",
           "wallets", "wallet_qrs", "traceparents", "topics", "payloads")
_OWE_DUE = sa.text(_OWE.format(due="now()", **{k: f":{k}" for k in _PARAMS}))
# Leased from the moment of the insert (not the transaction's start): the loop's deadline
# for these rows, half the lease, is read before the statement, so it ends first.
_OWE_LEASED = _OWE.format(
    due="clock_timestamp() + make_interval(secs => $13)",
    **{k: f"${i}" for i, k in enumerate(_PARAMS, 1)}) + f" RETURNING {_COLUMNS}"

# Rows inserted already leased go to `Hand(rows, deadline)` once their batch commits.
Hand = Callable[[list[Any], float], None]


async def on_registered(conn: AsyncConnection, items: list[Incoming], *,
                        hand: Hand | None = None, lease: float = 60.0) -> dict[int, str]:
    """A credential registered with a mailbox owes its learner one mail. With `hand` (the
    service's own delivery loop), the rows are inserted leased to this instance for `lease`
    seconds and handed to that loop once the batch is committed (`Incoming.after_commit`):
    no claim statement and no wake-up to find them. If the process dies before it sends
    them, they wait for the lease to pass, as a claimed row would (ADR 4). Without
    `hand`, they are due at once for whichever loop claims them."""
    owed: dict[uuid.UUID, Incoming] = {}
    for item in items:
        e = item.event
        assert isinstance(e, CredentialRegistered)
        if not e.learner_email:
            continue  # issued through the VC-API: nobody to mail
        owed.setdefault(e.credential_id, item)
    if not owed:
        return {}
    # Each one was checked to be a CredentialRegistered in the loop above.
    events = [cast(CredentialRegistered, i.event) for i in owed.values()]
    # A second registration event for the same credential owes no second message.
    values = {  # each row's id is the database's (a uuid4 here was a syscall per row)
        "cids": list(owed),
        "recipients": [e.learner_email for e in events],
        "names": [e.learner_name or "" for e in events],
        "languages": [e.learner_language for e in events],
        "titles": [e.title for e in events],
        "urls": [e.url for e in events],
        # The credential mail's `detail`: its LinkedIn "Add to profile" link.
        "details": [e.linkedin_url for e in events],
        "wallets": [e.wallet_url for e in events],
        "wallet_qrs": [e.wallet_qr_url for e in events],
        "traceparents": [i.traceparent for i in owed.values()],
        "topics": [i.record.topic for i in owed.values()],
        "payloads": [i.record.value or b"" for i in owed.values()],
    }
    driver = await driver_in_transaction(conn)
    if hand is None or driver is None:
        # Outside the consumer's transaction (no commit to wait for): due at once.
        await conn.execute(_OWE_DUE, values)
        return {}
    deadline = asyncio.get_running_loop().time() + lease / 2
    rows = await driver.fetch(_OWE_LEASED, *(values[k] for k in _PARAMS), lease)
    if rows:
        # The batch's writes commit or roll back together (the whole batch, or this one
        # item in its savepoint): its first item carries the hand-off.
        inserted = [SimpleNamespace(**r) for r in rows]
        next(iter(owed.values())).after_commit.append(partial(hand, inserted, deadline))
    return {}


async def on_status_changed(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    """Tell the learner when the issuer revokes, suspends or reinstates their credential."""
    for item in items:
        e = item.event
        assert isinstance(e, CredentialStatusChanged)
        issued = (await conn.execute(sa.select(Notification).where(
            col(Notification.credential_id) == e.credential_id,
            col(Notification.kind) == ISSUED))).first()
        if issued is None:
            continue  # never mailed (VC-API credential): nobody to tell
        nid = uuid.uuid4()
        await conn.execute(pg_insert(Notification).values(
            id=nid, credential_id=e.credential_id, kind=status_kind(e.action, item.envelope.id),
            recipient=issued.recipient, learner_name=issued.learner_name,
            language=issued.language, title=issued.title, url=issued.url, status="pending",
            attempts=0, next_attempt_at=datetime.now(UTC), detail=e.reason,
            message_id=f"<{nid}@microcred.local>", traceparent=item.traceparent,
            source_topic=item.record.topic, source_payload=item.record.value or b"",
        ).on_conflict_do_nothing())
    return {}


async def on_learner_messages(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    """The learner topic carries the sign-in links and the wallet transaction codes: both
    secrets for minutes, mailed, kept only until sent."""
    now = datetime.now(UTC)
    await _blank_spent_secrets(conn, now)
    refused: dict[int, str] = {}
    for index, item in enumerate(items):
        e = item.event
        if isinstance(e, LearnerSignInRequested):
            await _signin(conn, item, e, now)
        elif isinstance(e, WalletTxCodeIssued):
            await _tx_code(conn, item, e, now)
        else:
            refused[index] = f"{type(e).__name__} does not belong on the learner topic"
    return refused


async def _signin(conn: AsyncConnection, item: Incoming, e: LearnerSignInRequested,
                  now: datetime) -> None:
    if e.expires_at <= now:
        return  # arrived too late to be of use: mailing it would only confuse
    nid = uuid.uuid4()
    scrubbed = e.model_copy(update={"link": ""})
    await conn.execute(pg_insert(Notification).values(
        id=nid, credential_id=e.request_id, kind=SIGNIN, recipient=e.email,
        learner_name="", language=e.language, title="", url=e.link, status="pending",
        attempts=0, next_attempt_at=now, detail=e.expires_at.isoformat(),
        message_id=f"<{nid}@microcred.local>", traceparent=item.traceparent,
        source_topic=item.record.topic, source_payload=encode(scrubbed),
    ).on_conflict_do_nothing())


async def _tx_code(conn: AsyncConnection, item: Incoming, e: WalletTxCodeIssued,
                   now: datetime) -> None:
    """The code goes to the address the credential was mailed to (the registry keeps no
    addresses); a credential never mailed (VC-API) has nobody to send it to."""
    if e.expires_at <= now:
        return
    issued = (await conn.execute(sa.select(Notification).where(
        col(Notification.credential_id) == e.credential_id,
        col(Notification.kind) == ISSUED))).first()
    if issued is None:
        return
    nid = uuid.uuid4()
    scrubbed = e.model_copy(update={"tx_code": ""})
    await conn.execute(pg_insert(Notification).values(
        id=nid, credential_id=e.credential_id, kind=TX_CODE + str(e.offer_id),
        recipient=issued.recipient, learner_name=issued.learner_name, language=e.language,
        title=e.title or issued.title, url=issued.url, status="pending", attempts=0,
        next_attempt_at=now, detail=f"{e.tx_code} {e.expires_at.isoformat()}",
        message_id=f"<{nid}@microcred.local>", traceparent=item.traceparent,
        source_topic=item.record.topic, source_payload=encode(scrubbed),
    ).on_conflict_do_nothing())


async def _blank_spent_secrets(conn: AsyncConnection, now: datetime) -> None:
    spent = sa.or_(col(Notification.status) != "pending",
                   col(Notification.created_at) < now - timedelta(hours=1))
    await conn.execute(sa.update(Notification).where(
        col(Notification.kind) == SIGNIN, col(Notification.url) != "", spent).values(url=""))
    await conn.execute(sa.update(Notification).where(
        col(Notification.kind).startswith(TX_CODE), col(Notification.detail) != "",
        spent).values(detail=""))
