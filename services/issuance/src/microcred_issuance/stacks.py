"""Stacked credentials: awarded once a learner's component credentials complete a stack,
and kept in step with those components (ADR 12).

Components are this service's own issued credentials (every issuance instance shares the
database), matched by learner key (ADR 3), so a stack may span providers. The award runs
in the transaction that issued the last component, under a per-learner advisory lock: a
concurrent transaction issuing another component of the same learner waits and then sees
it (no missed stack), and the partial unique index on stack_awards refuses a second live
award (no double stack), whatever the interleaving.

Policy when a component changes: the stack is re-judged on the learner's remaining
*active* components (another credential of the same definition, or another k-of-n
component, can stand in). If the rule no longer holds, a revoked component revokes the
stack and a suspended one suspends it; when a suspended component is reinstated and the
rule holds again, a stack suspended for that reason is reinstated. A stack the issuer
suspended itself is never lifted automatically.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_issuance import lifecycle
from microcred_issuance.models import IssuedCredential, StackAward
from microcred_shared.catalog import Catalog, Definition, StackSpec
from microcred_shared.db import table_of
from microcred_shared.outbox import Outgoing


@dataclass(frozen=True)
class Held:
    credential_id: uuid.UUID
    definition_id: str
    issued_at: datetime


def completion(spec: StackSpec, held: list[Held]) -> list[Held] | None:
    """The components that complete the stack (the latest credential of each component
    definition, in the most recent window that works), or None. Pure."""
    mine = sorted((h for h in held if h.definition_id in spec.components),
                  key=lambda h: h.issued_at)
    window = timedelta(days=spec.window_days) if spec.window_days else None
    for end in reversed(range(len(mine))):
        latest: dict[str, Held] = {}
        for h in mine[: end + 1]:
            if window is None or mine[end].issued_at - h.issued_at <= window:
                latest[h.definition_id] = h
        if len(latest) >= spec.needed:
            return sorted(latest.values(),
                          key=lambda h: spec.components.index(h.definition_id))
        if window is None:
            return None  # without a window the longest prefix is the best chance
    return None


async def lock_learner(conn: AsyncConnection, learner_key: str) -> None:
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                       {"k": f"stack-learner:{learner_key}"})


async def held_by(conn: AsyncConnection, learner_key: str, definitions: set[str]) -> list[Held]:
    rows = (await conn.execute(sa.select(
        col(IssuedCredential.credential_id), col(IssuedCredential.definition_id),
        col(IssuedCredential.issued_at)).where(
        col(IssuedCredential.learner_key) == learner_key, col(IssuedCredential.status) == "active",
        col(IssuedCredential.definition_id).in_(sorted(definitions))))).all()
    return [Held(r.credential_id, r.definition_id, r.issued_at) for r in rows]


async def live_award(conn: AsyncConnection, stack_id: str, learner_key: str) -> Any:
    return (await conn.execute(sa.select(StackAward).where(
        col(StackAward.stack_definition_id) == stack_id, col(StackAward.learner_key) == learner_key,
        col(StackAward.status) != "revoked").with_for_update())).first()


async def claim(conn: AsyncConnection, stack: Definition, learner_key: str,
                parts: list[Held]) -> uuid.UUID | None:
    """Reserve the award; None when a live one exists (the unique index decides)."""
    cid = uuid.uuid4()
    table = table_of(StackAward)
    stmt = pg_insert(table).values(
        credential_id=cid, stack_definition_id=stack.id, learner_key=learner_key,
        components=[str(h.credential_id) for h in parts], status="active",
    ).on_conflict_do_nothing(
        index_elements=[table.c.stack_definition_id, table.c.learner_key],
        index_where=sa.text("status <> 'revoked'")).returning(table.c.credential_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def completed(conn: AsyncConnection, catalog: Catalog, learner_key: str,
                    new_definitions: set[str]) -> list[tuple[Definition, uuid.UUID, list[Held]]]:
    """Stacks that the learner's newly issued components complete: (stack, the reserved
    credential id, its components). Call after inserting the components, same transaction."""
    stacks = {s.id: s for d in sorted(new_definitions) for s in catalog.stacks_with(d)}
    if not stacks:
        return []
    await lock_learner(conn, learner_key)
    wanted = {c for s in stacks.values() for c in s.stack.components}  # type: ignore[union-attr]
    held = await held_by(conn, learner_key, wanted)
    out = []
    for stack in stacks.values():
        assert stack.stack is not None
        parts = completion(stack.stack, held)
        if parts and await live_award(conn, stack.id, learner_key) is None:
            cid = await claim(conn, stack, learner_key, parts)
            if cid is not None:
                out.append((stack, cid, parts))
    return out


async def follow_components(conn: AsyncConnection, catalog: Catalog, change: lifecycle.Changed,
                            *, base_url: str, sign_list: Callable[..., dict[str, Any]],
                            traceparent: str | None) -> list[Outgoing]:
    """Apply the policy above after `change` to a component credential."""
    if change.definition_id is None:
        return []
    stacks = catalog.stacks_with(change.definition_id)
    if not stacks:
        return []
    await lock_learner(conn, change.learner_key)
    records: list[Outgoing] = []
    for stack in stacks:
        assert stack.stack is not None
        award = await live_award(conn, stack.id, change.learner_key)
        if award is None:
            continue
        held = await held_by(conn, change.learner_key, set(stack.stack.components))
        holds = completion(stack.stack, held) is not None
        action = _reaction(change.status, award, holds)
        if action is None:
            continue
        row = await lifecycle.locked(conn, award.credential_id)
        verb = {"revoked": "was revoked", "suspended": "was suspended",
                "active": "was reinstated"}[change.status]
        _, out = await lifecycle.apply(
            conn, row, action, f"component credential {change.credential_id} {verb}",
            base_url=base_url, sign_list=sign_list, traceparent=traceparent)
        records += out
        await conn.execute(sa.update(StackAward).where(
            col(StackAward.credential_id) == award.credential_id).values(
            status=lifecycle.TRANSITIONS[action][1],
            held_by_components=action == "suspend"))
    return records


def _reaction(component_status: str, award: Any, holds: bool) -> lifecycle.Action | None:
    if component_status == "active":
        return "unsuspend" if (award.status == "suspended" and award.held_by_components
                               and holds) else None
    if holds:
        return None
    if component_status == "revoked":
        return "revoke"
    return "suspend" if award.status == "active" else None
