"""Revoke, suspend, reinstate: one code path for the issuer's own changes (HTTP) and for
the changes a stack undergoes when its components do (stacks.follow_components)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_issuance import status
from microcred_issuance.credential import STATUS_LIST_SIZE
from microcred_issuance.models import IssuedCredential
from microcred_shared import topics
from microcred_shared.events import CredentialStatusChanged
from microcred_shared.outbox import Outgoing, event_record

SOURCE = "/microcred/issuance"
Action = Literal["revoke", "suspend", "unsuspend"]
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "revoke": ({"active", "suspended"}, "revoked"),
    "suspend": ({"active"}, "suspended"),
    "unsuspend": ({"suspended"}, "active")}


@dataclass(frozen=True)
class Changed:
    credential_id: uuid.UUID
    provider_id: str
    learner_key: str
    definition_id: str | None
    before: str
    status: str
    changed_at: datetime


class InvalidTransition(ValueError):
    pass


async def locked(conn: AsyncConnection, credential_id: uuid.UUID) -> Any:
    return (await conn.execute(sa.select(IssuedCredential).where(
        col(IssuedCredential.credential_id) == credential_id).with_for_update())).first()


async def apply(conn: AsyncConnection, row: Any, action: Action, reason: str, *,
                base_url: str, sign_list: Callable[[dict[str, Any], str], dict[str, Any]],
                traceparent: str | None) -> tuple[Changed, list[Outgoing]]:
    """Flip the status bit, re-sign the list, announce the change. `row` is locked."""
    allowed, target = TRANSITIONS[action]
    if row.status not in allowed:
        raise InvalidTransition(f"cannot {action} a credential that is {row.status}")
    purpose = "revocation" if action == "revoke" else "suspension"
    await status.set_bit(conn, row.provider_id, purpose, row.status_index,
                         action != "unsuspend")
    await conn.execute(sa.update(IssuedCredential).where(
        col(IssuedCredential.credential_id) == row.credential_id).values(status=target))
    now = datetime.now(UTC)
    records = [
        await status.publish(conn, provider_id=row.provider_id, purpose=purpose,
                             list_no=row.status_index // STATUS_LIST_SIZE, base_url=base_url,
                             sign=sign_list),
        event_record(topics.CREDENTIAL_STATUS, CredentialStatusChanged(
            credential_id=row.credential_id, provider_id=row.provider_id,
            learner_key=row.learner_key, status=target,
            action=action, reason=reason, changed_at=now),
            SOURCE, traceparent=traceparent, subject=str(row.credential_id)),
    ]
    return Changed(row.credential_id, row.provider_id, row.learner_key, row.definition_id,
                   row.status, target, now), records
