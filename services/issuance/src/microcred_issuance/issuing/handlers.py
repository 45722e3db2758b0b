"""Use cases of issuing: a credential is drafted (from an achieved assessment, a completed
stack, or a provider's VC-API request), then `issue` gives it its status index, signs it
with its issuer's active key, registers it and announces it. One path for all three."""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance.driver import in_transaction
from microcred_issuance.issuing import announce, credential, domain
from microcred_issuance.keys.keystore import KeyStore
from microcred_issuance.keys.signing import Signer
from microcred_issuance.stacks import handlers as stacks
from microcred_issuance.stacks.domain import Held
from microcred_issuance.status import lists
from microcred_issuance.status.domain import status_entries
from microcred_shared import outbox
from microcred_shared.catalog import Definition, Provider
from microcred_shared.consumer import Incoming
from microcred_shared.contract.events import AssessmentDecided, KnownLearner
from microcred_shared.outbox import Outgoing
from microcred_shared.projection import LiveCatalog

SOURCE = announce.SOURCE


class CatalogBehind(ConnectionError):
    """A decision names a definition version or provider this projection has not seen yet.
    A ConnectionError on purpose: the consumer loop retries it like a transient failure
    (with backoff, then redelivery) instead of dead-lettering a decision that is fine."""


@dataclass(frozen=True)
class Issuing:
    """What issuing needs besides the connection (bound once in main, and per request)."""

    live: LiveCatalog
    keys: KeyStore
    signer: Signer

    @property
    def base_url(self) -> str:
        return self.signer.base_url


@dataclass(frozen=True)
class Draft:
    """A credential to issue, complete but for its status index and proof."""

    credential_id: uuid.UUID
    learner_key: str
    title: str
    document: Callable[[int], dict[str, Any]]  # the unsigned credential at a status index
    traceparent: str | None
    assessment_id: uuid.UUID | None = None
    definition: Definition | None = None
    learner: KnownLearner | None = None
    cryptosuite: str | None = None  # None: the configured one


@dataclass(frozen=True)
class Issued:
    draft: Draft
    signed: dict[str, Any]
    announcement: Outgoing


# Cached statements whatever the batch size (arrays in): an IN list or an executemany is
# recompiled or re-planned per size, which the e2e profile showed in every consumer. Each
# is sent on the driver's connection inside the consumer's transaction, through SQLAlchemy
# otherwise (`driver`; issue 12).
_KNOWN_SQL = ("SELECT assessment_id FROM issued_credentials "
              "WHERE assessment_id = ANY(CAST({ids} AS uuid[]))")
_KNOWN = sa.text(_KNOWN_SQL.format(ids=":ids"))
_KNOWN_DRIVER = _KNOWN_SQL.format(ids="$1")
# The columns that differ between a batch's credentials go in as arrays; the issuance
# time is the same for all of them (one batch) and goes in once (a timestamptz array is a
# Python conversion per element: 1.5-2 µs of client CPU per row less; issue 12). A batch's
# credentials of every issuer go in one statement (it was one per issuer: up to one per
# definition owner in a batch of decisions, each a round trip and ~60 µs of client CPU).
_COLUMNS = ("credential_id", "assessment_id", "provider_id", "definition_id",
            "definition_version", "learner_key", "key_id", "status_index", "suspendable")
_RECORD_SQL = (
    "INSERT INTO issued_credentials (credential_id, assessment_id, provider_id, "
    "definition_id, definition_version, learner_key, key_id, status_index, issued_at, "
    "suspendable, status) SELECT c, a, p, d, v, l, k, s, CAST({issued_at} AS timestamptz), "
    "x, 'active' "
    "FROM unnest(CAST({credential_id} AS uuid[]), CAST({assessment_id} AS uuid[]), "
    "CAST({provider_id} AS text[]), CAST({definition_id} AS text[]), "
    "CAST({definition_version} AS int[]), CAST({learner_key} AS text[]), "
    "CAST({key_id} AS text[]), CAST({status_index} AS int[]), "
    "CAST({suspendable} AS boolean[])) AS u(c, a, p, d, v, l, k, s, x)")
_RECORD = sa.text(_RECORD_SQL.format(**{k: f":{k}" for k in ("issued_at", *_COLUMNS)}))
_RECORD_DRIVER = _RECORD_SQL.format(**{k: f"${n}" for n, k in
                                       enumerate(("issued_at", *_COLUMNS), start=1)})


async def _record(conn: AsyncConnection, now: datetime, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    arrays = [[r[k] for r in rows] for k in _COLUMNS]
    if (driver := await in_transaction(conn)) is not None:
        await driver.execute(_RECORD_DRIVER, now, *arrays)
        return
    await conn.execute(_RECORD, {"issued_at": now, **dict(zip(_COLUMNS, arrays, strict=True))})


async def _known(conn: AsyncConnection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these assessments issued a credential already (a redelivery)."""
    if (driver := await in_transaction(conn)) is not None:
        return {r[0] for r in await driver.fetch(_KNOWN_DRIVER, ids)}
    return set((await conn.execute(_KNOWN, {"ids": ids})).scalars())


async def issue(conn: AsyncConnection, ctx: Issuing, issuer: str, drafts: list[Draft],
                now: datetime, allocated: lists.Allocation | None = None, *,
                records: list[dict[str, Any]] | None = None,
                ) -> tuple[list[Outgoing], list[Issued]]:
    """Issue `drafts` as `issuer`: the status lists made for them (to publish first: they
    must be served before any credential pointing into them verifies), and each credential
    signed, registered and announced. `allocated`: their status indexes, if the caller
    allocated them already (`lists.allocate`, for several issuers at once). `records`: the
    caller registers them, with other issuers' (their rows are appended there for its
    `_record` in the same transaction); None: registered here."""
    # A provider onboarded after this process started: load the key another instance made.
    await ctx.keys.ensure_loaded(issuer)
    first, new_lists = await lists.reserve(conn, ctx.signer, issuer, len(drafts), allocated)
    key = ctx.keys.active(issuer)
    issued, rows = [], []
    for offset, draft in enumerate(drafts):
        signed = ctx.signer.credential(draft.document(first + offset), key, draft.cryptosuite)
        d, who = draft.definition, draft.learner
        rows.append({"credential_id": draft.credential_id, "assessment_id": draft.assessment_id,
                     "provider_id": issuer, "key_id": key.key_id,
                     "definition_id": d.id if d else None,
                     "definition_version": d.version if d else None,
                     "learner_key": draft.learner_key, "status_index": first + offset,
                     # As its document says (ADR 8): a VC-API credential never is.
                     "suspendable": bool(d and d.suspendable)})
        issued.append(Issued(draft, signed, announce.record(
            credential_id=draft.credential_id, assessment_id=draft.assessment_id,
            provider_id=issuer, definition_id=d.id if d else None,
            definition_version=d.version if d else None, learner_key=draft.learner_key,
            learner_email=who.email if who else None, learner_name=who.full_name if who else None,
            learner_language=who.language if who else "en", title=draft.title, issued_at=now,
            signed=signed, traceparent=draft.traceparent)))
    if records is None:
        await _record(conn, now, rows)
    else:
        records.extend(rows)
    return new_lists, issued


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


def _achieved(ctx: Issuing, issuer: str, definition: Definition, decision: AssessmentDecided,
              traceparent: str | None, now: datetime) -> Draft:
    provider = ctx.live.current.provider(issuer)
    assert provider is not None
    # Random, not derived: a credential URL must not be guessable from a result id.
    cid = uuid.uuid4()
    salt = secrets.token_hex(8)

    def document(index: int) -> dict[str, Any]:
        return credential.build(
            decision=decision, definition=definition, provider=provider,
            profile=credential.profile_of(provider, ctx.base_url), credential_id=cid,
            issued_at=now, base_url=ctx.base_url, status_index=index, salt=salt)

    return Draft(cid, decision.learner_key, definition.title.en, document, traceparent,
                 assessment_id=decision.assessment_id, definition=definition,
                 learner=decision.learner)


Accepted = tuple[Incoming, AssessmentDecided, Definition]


async def _achievements(ctx: Issuing, items: list[Incoming],
                        ) -> tuple[dict[int, str], list[Accepted]]:
    """The achieved decisions to issue, and the refused ones with their reasons."""
    refused: dict[int, str] = {}
    todo: list[Accepted] = []
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
    return refused, todo


async def on_decisions(conn: AsyncConnection, items: list[Incoming], *,
                       ctx: Issuing) -> dict[int, str]:
    """Achieved assessments become signed credentials; the stacks they complete too."""
    refused, todo = await _achievements(ctx, items)
    if not todo:
        return refused
    # Redelivered decisions (after a crash or a replay) must not issue twice.
    known = await _known(conn, [d.assessment_id for _, d, _ in todo])
    # The issuer is the definition's owner, also when a co-issuer reported the result.
    by_issuer: dict[str, list[Accepted]] = defaultdict(list)
    for entry in todo:
        if entry[1].assessment_id not in known:
            by_issuer[entry[2].provider_id].append(entry)
    now = datetime.now(UTC)
    new_by_learner: dict[str, tuple[Incoming, KnownLearner, set[str]]] = {}
    # Every issuer's status indexes in one statement (one round trip and commit per batch).
    allocated = await lists.allocate(conn, {issuer: len(entries)
                                            for issuer, entries in by_issuer.items()}
                                     ) if by_issuer else {}
    records: list[dict[str, Any]] = []  # every issuer's, registered in one statement
    for issuer, entries in by_issuer.items():
        drafts = [_achieved(ctx, issuer, d, decision, item.traceparent, now)
                  for item, decision, d in entries]
        new_lists, issued = await issue(conn, ctx, issuer, drafts, now, allocated[issuer],
                                        records=records)
        entries[0][0].outgoing.extend(new_lists)
        for (item, decision, definition), done in zip(entries, issued, strict=True):
            item.outgoing.append(done.announcement)
            seen = new_by_learner.setdefault(decision.learner_key,
                                             (item, decision.learner, set()))
            seen[2].add(definition.id)
    # Before the stack queries: they read the batch's new credentials back.
    await _record(conn, now, records)
    completions = await stacks.completed_many(
        conn, ctx.live.current, {key: seen[2] for key, seen in new_by_learner.items()})
    for learner_key, (item, learner, _) in sorted(new_by_learner.items()):
        if learner_key in completions:
            await _award_stacks(conn, ctx, learner_key, learner, completions[learner_key],
                                item, now)
    return refused


async def _award_stacks(conn: AsyncConnection, ctx: Issuing, learner_key: str,
                        learner: KnownLearner, completions: list[stacks.Completion],
                        item: Incoming, now: datetime) -> None:
    """Stacks the new credentials complete are issued in the same transaction (ADR 12)."""
    catalog = ctx.live.current
    for stack, cid, parts in completions:
        owner = catalog.provider(stack.provider_id)
        if owner is None:
            raise CatalogBehind(f"provider {stack.provider_id} not projected yet")
        draft = _stacked(ctx, stack, owner, cid, parts, learner_key, learner,
                         item.traceparent, now)
        new_lists, issued = await issue(conn, ctx, owner.id, [draft], now)
        item.outgoing.extend([*new_lists, issued[0].announcement])


def _stacked(ctx: Issuing, stack: Definition, owner: Provider, cid: uuid.UUID,
             parts: list[Held], learner_key: str, learner: KnownLearner,
             traceparent: str | None, now: datetime) -> Draft:
    """A stacked credential: issued by the stack's owner, naming its components."""
    salt = secrets.token_hex(8)

    def document(index: int) -> dict[str, Any]:
        return credential.build_stack(
            definition=stack, provider=owner,
            profile=credential.profile_of(owner, ctx.base_url), credential_id=cid,
            issued_at=now, base_url=ctx.base_url, status_index=index, salt=salt,
            learner=learner,
            components=[f"{ctx.base_url}/v1/credentials/{h.credential_id}" for h in parts],
            completed_at=max(h.issued_at for h in parts))

    return Draft(cid, learner_key, stack.title.en, document, traceparent, definition=stack,
                 learner=learner)


async def issue_submitted(conn: AsyncConnection, ctx: Issuing, provider_id: str,
                          submitted: dict[str, Any], *, requested_id: str | None,
                          cryptosuite: str | None, traceparent: str | None) -> dict[str, Any]:
    """VC-API: a provider's own credential, issued as that provider (see domain)."""
    domain.check_submitted(submitted, base_url=ctx.base_url, provider_id=provider_id)
    cid = uuid.uuid4()
    now = datetime.now(UTC)
    doc = domain.completed(submitted, cid, requested_id=requested_id, now=now)

    def document(index: int) -> dict[str, Any]:
        return domain.with_status(doc, status_entries(ctx.base_url, provider_id, index,
                                                      suspendable=False))

    draft = Draft(cid, domain.subject_learner_key(doc, cid), domain.title_of(doc), document,
                  traceparent, cryptosuite=cryptosuite)
    new_lists, issued = await issue(conn, ctx, provider_id, [draft], now)
    # An Open Badge our own verifier would call invalid is not signed off: the refusal
    # rolls the transaction back (status index, record and announcement included).
    domain.check_signed(issued[0].signed)
    await outbox.write(conn, [*new_lists, issued[0].announcement])
    return issued[0].signed
