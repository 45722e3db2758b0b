"""Use cases of the issuance service: achieved assessments become signed credentials, and
completed stacks become stacked credentials in the same transaction."""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance import credential, stacks, status
from microcred_issuance.keystore import KeyStore, SigningKey
from microcred_issuance.models import IssuedCredential, StatusAllocation
from microcred_shared import topics
from microcred_shared.catalog import Catalog, Definition
from microcred_shared.consumer import Incoming
from microcred_shared.db import table_of
from microcred_shared.events import AssessmentDecided, CredentialIssued, KnownLearner
from microcred_shared.outbox import Outgoing, event_record
from microcred_shared.projection import LiveCatalog

SOURCE = "/microcred/issuance"
Signer = Callable[[dict[str, Any], SigningKey], dict[str, Any]]
ListSigner = Callable[[dict[str, Any], str], dict[str, Any]]


class CatalogBehind(ConnectionError):
    """A decision names a definition version or provider this projection has not seen yet.
    A ConnectionError on purpose: the consumer loop retries it like a transient failure
    (with backoff, then redelivery) instead of dead-lettering a decision that is fine."""


@dataclass
class Issuing:
    """What the handler needs besides the connection (bound once in main)."""

    live: LiveCatalog
    keys: KeyStore
    sign: Signer
    sign_list: ListSigner
    base_url: str


# Cached statements whatever the batch size (arrays in): an IN list or an executemany is
# recompiled or re-planned per size, which the e2e profile showed in every consumer.
_KNOWN = sa.text("SELECT assessment_id FROM issued_credentials "
                 "WHERE assessment_id = ANY(CAST(:ids AS uuid[]))")
_COLUMNS = ("credential_id", "assessment_id", "provider_id", "definition_id",
            "definition_version", "learner_key", "key_id", "status_index", "issued_at")
_RECORD = sa.text(
    "INSERT INTO issued_credentials (credential_id, assessment_id, provider_id, "
    "definition_id, definition_version, learner_key, key_id, status_index, issued_at, "
    "status) SELECT *, 'active' FROM unnest(CAST(:credential_id AS uuid[]), "
    "CAST(:assessment_id AS uuid[]), CAST(:provider_id AS text[]), "
    "CAST(:definition_id AS text[]), CAST(:definition_version AS int[]), "
    "CAST(:learner_key AS text[]), CAST(:key_id AS text[]), CAST(:status_index AS int[]), "
    "CAST(:issued_at AS timestamptz[]))")


async def allocate(conn: AsyncConnection, provider_id: str, count: int) -> int:
    """Reserve `count` consecutive status list indexes; returns the first."""
    table = table_of(StatusAllocation)
    stmt = pg_insert(table).values(provider_id=provider_id, next_index=count)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.provider_id], set_={"next_index": table.c.next_index + count}
    ).returning(table.c.next_index)
    end = (await conn.execute(upsert)).scalar_one()
    return int(end) - count


async def _definition(ctx: Issuing, decision: AssessmentDecided) -> Definition | str:
    """The definition at the decision's version, or why the decision is refused."""
    d = await ctx.live.definition_at(decision.definition_id, decision.definition_version,
                                     timeout=3.0)
    if d is None:
        latest = ctx.live.current.definition(decision.definition_id)
        if latest is None or latest.version < decision.definition_version:
            raise CatalogBehind(f"definition {decision.definition_id} "
                                f"v{decision.definition_version} not projected yet")
        return (f"definition {decision.definition_id!r} v{decision.definition_version} is "
                "unknown here (older than this projection)")
    if not d.may_submit(decision.provider_id):
        return f"no definition {decision.definition_id!r} for this provider"
    if ctx.live.current.provider(d.provider_id) is None:
        raise CatalogBehind(f"provider {d.provider_id} not projected yet")
    return d


async def on_decisions(conn: AsyncConnection, items: list[Incoming], *,
                       ctx: Issuing) -> dict[int, str]:
    refused: dict[int, str] = {}
    todo: list[tuple[Incoming, AssessmentDecided, Definition]] = []
    for index, item in enumerate(items):
        decision = item.event
        assert isinstance(decision, AssessmentDecided)
        if not decision.achieved:
            continue
        found = await _definition(ctx, decision)
        if isinstance(found, str):
            refused[index] = found
            continue
        todo.append((item, decision, found))
    if not todo:
        return refused
    # Redelivered decisions (after a crash or a replay) must not issue twice.
    known = set((await conn.execute(_KNOWN, {
        "ids": [d.assessment_id for _, d, _ in todo]})).scalars())
    todo = [t for t in todo if t[1].assessment_id not in known]
    # The issuer is the definition's owner, also when a co-issuer reported the result.
    by_issuer: dict[str, list[tuple[Incoming, AssessmentDecided, Definition]]] = \
        defaultdict(list)
    for entry in todo:
        by_issuer[entry[2].provider_id].append(entry)
    now = datetime.now(UTC)
    new_by_learner: dict[str, tuple[Incoming, KnownLearner, set[str]]] = {}
    for issuer, entries in by_issuer.items():
        first = await _reserve(conn, ctx, issuer, len(entries), entries[0][0])
        rows = []
        for offset, (item, decision, definition) in enumerate(entries):
            row, record = _issue(ctx, issuer, definition, decision, item, first + offset, now)
            rows.append(row)
            item.outgoing.append(record)
            seen = new_by_learner.setdefault(decision.learner_key,
                                             (item, decision.learner, set()))
            seen[2].add(definition.id)
        await conn.execute(_RECORD, {k: [r[k] for r in rows] for k in _COLUMNS})
    for learner_key, (item, learner, definitions) in sorted(new_by_learner.items()):
        await _award_stacks(conn, ctx, learner_key, learner, definitions, item, now)
    return refused


async def _reserve(conn: AsyncConnection, ctx: Issuing, issuer: str, count: int,
                   carrier: Incoming) -> int:
    """Status list indexes for `count` credentials of `issuer`; a list created for them is
    published first (it must be served before any credential pointing into it verifies)."""
    await ctx.keys.ensure_loaded(issuer)
    first = await allocate(conn, issuer, count)
    lists = {i // credential.STATUS_LIST_SIZE for i in (first, first + count - 1)}
    for purpose, list_no in await status.ensure_lists(conn, issuer, lists):
        carrier.outgoing.append(await status.publish(
            conn, provider_id=issuer, purpose=purpose, list_no=list_no,
            base_url=ctx.base_url, sign=ctx.sign_list))
    return first


def _issue(ctx: Issuing, issuer: str, definition: Definition, decision: AssessmentDecided,
           item: Incoming, index: int, now: datetime) -> tuple[dict[str, Any], Outgoing]:
    provider = ctx.live.current.provider(issuer)
    assert provider is not None
    key = ctx.keys.active(issuer)
    # Random, not derived: a credential URL must not be guessable from a result id.
    cid = uuid.uuid4()
    doc = credential.build(
        decision=decision, definition=definition, provider=provider,
        profile=credential.issuer_profile(provider, ctx.base_url), credential_id=cid,
        issued_at=now, base_url=ctx.base_url, status_index=index, salt=secrets.token_hex(8))
    row = {"credential_id": cid, "assessment_id": decision.assessment_id,
           "provider_id": issuer, "definition_id": definition.id,
           "definition_version": definition.version, "learner_key": decision.learner_key,
           "key_id": key.key_id, "status_index": index, "issued_at": now}
    return row, _announce(ctx, cid, decision.assessment_id, issuer, definition,
                          decision.learner_key, decision.learner, now, ctx.sign(doc, key),
                          item.traceparent)


def _announce(ctx: Issuing, cid: uuid.UUID, assessment_id: uuid.UUID | None, issuer: str,
              definition: Definition, learner_key: str, learner: KnownLearner, now: datetime,
              signed: dict[str, Any], traceparent: str | None) -> Outgoing:
    return event_record(topics.CREDENTIALS_ISSUED, CredentialIssued(
        credential_id=cid, assessment_id=assessment_id, provider_id=issuer,
        definition_id=definition.id, definition_version=definition.version,
        learner_key=learner_key, learner_email=learner.email, learner_name=learner.full_name,
        learner_language=learner.language, title=definition.title.en, issued_at=now,
        credential=signed,
    ), SOURCE, traceparent=traceparent, subject=str(cid))


async def _award_stacks(conn: AsyncConnection, ctx: Issuing, learner_key: str,
                        learner: KnownLearner, definitions: set[str], item: Incoming,
                        now: datetime) -> None:
    catalog: Catalog = ctx.live.current
    for stack, cid, parts in await stacks.completed(conn, catalog, learner_key, definitions):
        owner = catalog.provider(stack.provider_id)
        if owner is None:
            raise CatalogBehind(f"provider {stack.provider_id} not projected yet")
        index = await _reserve(conn, ctx, owner.id, 1, item)
        key = ctx.keys.active(owner.id)
        doc = credential.build_stack(
            definition=stack, provider=owner,
            profile=credential.issuer_profile(owner, ctx.base_url), credential_id=cid,
            issued_at=now, base_url=ctx.base_url, status_index=index,
            salt=secrets.token_hex(8), learner=learner,
            components=[f"{ctx.base_url}/v1/credentials/{h.credential_id}" for h in parts],
            completed_at=max(h.issued_at for h in parts))
        await conn.execute(sa.insert(IssuedCredential).values(
            credential_id=cid, provider_id=owner.id, definition_id=stack.id,
            definition_version=stack.version, learner_key=learner_key, key_id=key.key_id,
            status_index=index, issued_at=now))
        item.outgoing.append(_announce(ctx, cid, None, owner.id, stack, learner_key, learner,
                                       now, ctx.sign(doc, key), item.traceparent))
