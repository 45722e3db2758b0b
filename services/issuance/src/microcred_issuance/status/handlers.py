"""Use cases of a credential's status: revoke, suspend, reinstate (one code path for the
issuer's own changes and for the changes a stack undergoes when its components do), and
keeping every status list signed and fresh."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_issuance.keys.signing import Signer
from microcred_issuance.status import lists
from microcred_issuance.status.domain import (
    STATUS_LIST_SIZE,
    VALIDITY,
    Action,
    Changed,
    purpose_of,
    transition,
)
from microcred_issuance.status.models import IssuedCredential, StatusList
from microcred_shared import logs, outbox
from microcred_shared.audit import audit_event, audit_record
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialStatusChanged
from microcred_shared.outbox import Outgoing, event_record

SOURCE = "/microcred/issuance"
log = logging.getLogger(__name__)
# What else must move when a credential's status does, in the same transaction: main
# passes stacks' follower here (status does not know stacks; stacks depends on status).
Follower = Callable[[AsyncConnection, Changed, str | None], Awaitable[list[Outgoing]]]


class NotFound(LookupError):
    pass


class NotTheIssuer(PermissionError):
    def __init__(self, issuer: str) -> None:
        super().__init__(f"issued by {issuer!r}")
        self.issuer = issuer


async def locked(conn: AsyncConnection, credential_id: uuid.UUID) -> Any:
    return (await conn.execute(sa.select(IssuedCredential).where(
        col(IssuedCredential.credential_id) == credential_id).with_for_update())).first()


async def apply(conn: AsyncConnection, signer: Signer, row: Any, action: Action, reason: str,
                *, traceparent: str | None) -> tuple[Changed, list[Outgoing]]:
    """Flip the status bit, re-sign the list, announce the change. `row` is locked."""
    target = transition(action, row.status, suspendable=row.suspendable)
    purpose = purpose_of(action)
    await lists.set_bit(conn, row.provider_id, purpose, row.status_index,
                        action != "unsuspend")
    await conn.execute(sa.update(IssuedCredential).where(
        col(IssuedCredential.credential_id) == row.credential_id).values(status=target))
    now = datetime.now(UTC)
    records = [
        await lists.publish(conn, signer, provider_id=row.provider_id, purpose=purpose,
                            list_no=row.status_index // STATUS_LIST_SIZE),
        event_record(topics.CREDENTIAL_STATUS, CredentialStatusChanged(
            credential_id=row.credential_id, provider_id=row.provider_id,
            learner_key=row.learner_key, status=target,
            action=action, reason=reason, changed_at=now),
            SOURCE, traceparent=traceparent, subject=str(row.credential_id)),
    ]
    return Changed(row.credential_id, row.provider_id, row.learner_key, row.definition_id,
                   row.status, target, now), records


async def change_status(conn: AsyncConnection, signer: Signer, credential_id: uuid.UUID,
                        action: Action, reason: str, *, provider_id: str,
                        followers: Sequence[Follower], traceparent: str | None) -> Changed:
    """The issuing provider changes its credential's status (only the issuer may), and
    whatever follows it (stacks made of it) moves in the same transaction."""
    row = await locked(conn, credential_id)
    if row is None:
        raise NotFound(credential_id)
    if row.provider_id != provider_id:
        raise NotTheIssuer(row.provider_id)
    changed, records = await apply(conn, signer, row, action, reason, traceparent=traceparent)
    for follow in followers:
        records += await follow(conn, changed, traceparent)
    await outbox.write(conn, records)
    return changed


async def record_refusal(engine: AsyncEngine, credential_id: uuid.UUID, action: Action, *,
                         provider_id: str, issuer: str, traceparent: str | None) -> None:
    """Audit a provider's attempt on another's credential, in a transaction of its own (the
    request's is rolled back)."""
    event = audit_event("issuance", channel="http", actor=f"provider:{provider_id}",
                        provider_id=provider_id, action=f"credential.{action}",
                        reason=f"credential {credential_id} was issued by {issuer!r}",
                        details={"credential_id": str(credential_id)})
    async with engine.begin() as conn:
        await outbox.write(conn, [audit_record(event, traceparent=traceparent)])


async def publish_status_lists(engine: AsyncEngine, signer: Signer, *, initial: bool = False,
                               older_than: timedelta | None = None) -> int:
    """(Re)sign status lists: at start every provider that has a key has its first lists
    served; later, lists not re-signed for a while are refreshed before they expire."""
    async with engine.begin() as conn:
        if initial:
            for provider_id in signer.keys.providers():
                await lists.ensure_lists(conn, provider_id, {0})
        query = sa.select(col(StatusList.provider_id), col(StatusList.purpose),
                          col(StatusList.list_no))
        if older_than is not None:
            query = query.where(col(StatusList.updated_at) < datetime.now(UTC) - older_than)
        rows = (await conn.execute(query)).all()
        records = [await lists.publish(conn, signer, provider_id=r.provider_id,
                                       purpose=r.purpose, list_no=r.list_no) for r in rows]
        if older_than is not None and rows:
            await conn.execute(sa.update(StatusList).where(sa.tuple_(
                col(StatusList.provider_id), col(StatusList.purpose), col(StatusList.list_no)).in_(
                [tuple(r) for r in rows])).values(updated_at=datetime.now(UTC)))
        await outbox.write(conn, records)
    return len(records)


async def refresh_status_lists(engine: AsyncEngine, signer: Signer) -> None:
    while True:
        await asyncio.sleep(3600)
        try:
            await publish_status_lists(engine, signer, older_than=VALIDITY / 2)
        except Exception as exc:
            logs.failure(log, "status list refresh failed; next try in an hour", exc)
