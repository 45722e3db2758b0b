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
suspended itself is never lifted automatically. A stack whose definition is not
suspendable (ADR 8: its credentials carry no suspension entry) is not suspended by a
component's suspension: suspension is temporary, and only revocation is final enough to
reach a credential that cannot show it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_issuance.driver import in_transaction
from microcred_issuance.keys.signing import Signer
from microcred_issuance.stacks.domain import VERB, Held, completion, reaction
from microcred_issuance.stacks.models import StackAward
from microcred_issuance.status import handlers as status
from microcred_issuance.status.domain import TRANSITIONS, Changed
from microcred_issuance.status.models import IssuedCredential
from microcred_shared.catalog import Catalog, Definition
from microcred_shared.db import table_of
from microcred_shared.outbox import Outgoing
from microcred_shared.projection import LiveCatalog


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


# A batch's learners locked in one statement, in code point order (the order Python's
# sorted() gives, so every batch locks any two learners in the same order: no deadlock).
_LOCK_LEARNERS_SQL = (
    "SELECT count(pg_advisory_xact_lock(hashtext('stack-learner:' || k))) FROM "
    "(SELECT k FROM unnest(CAST({keys} AS text[])) AS u(k) ORDER BY k COLLATE \"C\") AS s")
_LOCK_LEARNERS = sa.text(_LOCK_LEARNERS_SQL.format(keys=":keys"))
_HELD_SQL = (
    "SELECT learner_key, credential_id, definition_id, issued_at FROM issued_credentials "
    "WHERE learner_key = ANY(CAST({keys} AS text[])) AND status = 'active' "
    "AND definition_id = ANY(CAST({definitions} AS text[]))")
_HELD = sa.text(_HELD_SQL.format(keys=":keys", definitions=":definitions"))
# The same on the driver's connection, inside the consumer's transaction (issue 12).
_LOCK_LEARNERS_DRIVER = _LOCK_LEARNERS_SQL.format(keys="$1")
_HELD_DRIVER = _HELD_SQL.format(keys="$1", definitions="$2")

Completion = tuple[Definition, uuid.UUID, list[Held]]


async def completed_many(conn: AsyncConnection, catalog: Catalog,
                         new_definitions: dict[str, set[str]]) -> dict[str, list[Completion]]:
    """`completed` for a batch's learners (learner key -> definitions newly issued), with
    one lock statement and one query for all of them instead of two per learner."""
    stacks_of = {key: {s.id: s for d in sorted(defs) for s in catalog.stacks_with(d)}
                 for key, defs in new_definitions.items()}
    keys = sorted(key for key, found in stacks_of.items() if found)
    if not keys:
        return {}
    wanted = sorted({c for key in keys for s in stacks_of[key].values()
                     for c in s.stack.components})  # type: ignore[union-attr]
    held: dict[str, list[Held]] = {key: [] for key in keys}
    if (driver := await in_transaction(conn)) is not None:
        await driver.execute(_LOCK_LEARNERS_DRIVER, keys)
        rows: Any = await driver.fetch(_HELD_DRIVER, keys, wanted)
    else:
        await conn.execute(_LOCK_LEARNERS, {"keys": keys})
        rows = (await conn.execute(_HELD, {"keys": keys, "definitions": wanted})).mappings()
    for row in rows:
        held[row["learner_key"]].append(
            Held(row["credential_id"], row["definition_id"], row["issued_at"]))
    out: dict[str, list[Completion]] = {}
    for key in keys:
        out[key] = await _claim_completed(conn, stacks_of[key], key, held[key])
    return out


async def completed(conn: AsyncConnection, catalog: Catalog, learner_key: str,
                    new_definitions: set[str]) -> list[Completion]:
    """Stacks that the learner's newly issued components complete: (stack, the reserved
    credential id, its components). Call after inserting the components, same transaction."""
    stacks = {s.id: s for d in sorted(new_definitions) for s in catalog.stacks_with(d)}
    if not stacks:
        return []
    await lock_learner(conn, learner_key)
    wanted = {c for s in stacks.values() for c in s.stack.components}  # type: ignore[union-attr]
    held = await held_by(conn, learner_key, wanted)
    return await _claim_completed(conn, stacks, learner_key, held)


async def _claim_completed(conn: AsyncConnection, stacks: dict[str, Definition],
                           learner_key: str, held: list[Held]) -> list[Completion]:
    out = []
    for stack in stacks.values():
        assert stack.stack is not None
        parts = completion(stack.stack, held)
        if parts and await live_award(conn, stack.id, learner_key) is None:
            cid = await claim(conn, stack, learner_key, parts)
            if cid is not None:
                out.append((stack, cid, parts))
    return out


async def follow_components(conn: AsyncConnection, catalog: Catalog, change: Changed, *,
                            signer: Signer, traceparent: str | None) -> list[Outgoing]:
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
        action = reaction(change.status, award.status, award.held_by_components,
                          holds=completion(stack.stack, held) is not None)
        if action is None:
            continue
        row = await status.locked(conn, award.credential_id)
        if action == "suspend" and not row.suspendable:
            continue  # a stack issued without a suspension entry stands (ADR 8)
        _, out = await status.apply(
            conn, signer, row, action,
            f"component credential {change.credential_id} {VERB[change.status]}",
            traceparent=traceparent)
        records += out
        await conn.execute(sa.update(StackAward).where(
            col(StackAward.credential_id) == award.credential_id).values(
            status=TRANSITIONS[action][1], held_by_components=action == "suspend"))
    return records


async def mark_award(conn: AsyncConnection, change: Changed) -> None:
    """The issuer changed a stacked credential itself: a suspension of its own is never
    lifted by a component's reinstatement."""
    await conn.execute(sa.update(StackAward).where(
        col(StackAward.credential_id) == change.credential_id).values(
        status=change.status, held_by_components=False))


@dataclass(frozen=True)
class FollowStatus:
    """The status context's follower (see status.handlers.Follower): stacks made of the
    changed credential follow it, and a changed stack remembers it was the issuer's doing."""

    live: LiveCatalog
    signer: Signer

    async def __call__(self, conn: AsyncConnection, change: Changed,
                       traceparent: str | None) -> list[Outgoing]:
        records = await follow_components(conn, self.live.current, change,
                                          signer=self.signer, traceparent=traceparent)
        if change.definition_id is not None:
            await mark_award(conn, change)
        return records
