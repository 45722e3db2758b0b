"""Use cases of assessing: the ingest check (one, for HTTP and Kafka alike), submitting a
result over HTTP (decided at the door), deciding the results that arrive on Kafka, and a
result's status.
They take their I/O as arguments."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_assessment.audit import handlers as audit
from microcred_assessment.results import decisions, ingest
from microcred_assessment.results.domain import (
    InvalidResult,
    Refused,
    UnfitText,
    actor_of,
    assessment_id_for,
    check,
    decided,
    escaped,
    sender_provider,
)
from microcred_assessment.results.ingest import IngestStore
from microcred_assessment.results.models import ResultRecord
from microcred_shared.audit import Channel
from microcred_shared.catalog import Catalog, Definition
from microcred_shared.consumer import Incoming
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentDecided, AssessmentResultSubmitted
from microcred_shared.projection import LiveCatalog
from microcred_shared.telemetry import trace_id_of

_PROVIDER_TOPIC = re.compile(topics.PROVIDER_RESULTS_PATTERN)


async def screen(conn: AsyncConnection, result: AssessmentResultSubmitted, *, source: str,
                 channel: Channel, catalog: Catalog, now: datetime, skew: timedelta,
                 traceparent: str | None, context: dict[str, str] | None = None,
                 ) -> Definition:
    """The ingest check as the Kafka consumers ask it (HTTP ingest asks the same `check` in
    `submit_many` and audits its refusals in bulk) whether a result may enter: the sender
    (`source`, authenticated by the caller) may submit it and it can be judged. Raises
    Refused (audited in `conn`'s transaction, with `context`) or InvalidResult (the sender
    is told, nothing is audited). UnfitText is audited too when
    it came over Kafka, for the sender: its only other answer is a dead letter."""
    try:
        return check(result, source, catalog, now, skew)
    except Refused as exc:
        await audit.record(
            conn, channel=channel, actor=actor_of(sender_provider(source)), action=exc.action,
            provider_id=result.provider_id, reason=str(exc), traceparent=traceparent,
            details={**(context or {}), "result_id": result.result_id,
                     "definition_id": result.definition_id})
        raise
    except UnfitText as exc:
        if channel == "kafka":
            # For the authenticated sender, not the provider the record names; the
            # record's own strings are left out (they hold what cannot be stored).
            sender = sender_provider(source)
            await audit.record(
                conn, channel=channel, actor=actor_of(sender), action=exc.action,
                provider_id=sender, reason=str(exc), traceparent=traceparent,
                details=dict(context or {}))
        raise


@dataclass(frozen=True)
class Submitted:
    event_id: str
    assessment_id: uuid.UUID
    duplicate: bool = False  # the same result was received before (counted, not redecided)


class Conflict(InvalidResult):
    """The provider result id was already submitted with other content: the first stands."""

    status = 409

    def __init__(self, result_id: str, event_id: str | None) -> None:
        super().__init__(f"result_id {result_id!r} was already submitted with other content"
                         f"{f' (event {event_id})' if event_id else ''}; the first one "
                         "stands: a new result needs a new result_id")


async def submit_many(engine: AsyncEngine, store: IngestStore,
                      results: list[AssessmentResultSubmitted], provider_id: str, *,
                      catalog: Catalog, skew: timedelta, traceparent: str | None,
                      ) -> list[Submitted | InvalidResult]:
    """HTTP ingest: each result that passes the ingest check (`check`, as `screen` does
    for Kafka) is decided at the door (ADR 40): the store writes the decision and, for a
    result decided for the first time, its event for issuance, in the transaction that
    records it in the ingest ledger. One outcome per result, in order: Submitted once it
    is durably decided (or counted as a resubmission), or why it was refused — Refused
    (its audit record committed), Conflict, or another InvalidResult."""
    source = f"/providers/{provider_id}"
    now = datetime.now(UTC)
    out: list[Submitted | InvalidResult | None] = [None] * len(results)
    audits: list[dict[str, Any]] = []
    items: list[ingest.Item] = []
    where: list[int] = []
    for index, result in enumerate(results):
        try:
            definition = check(result, source, catalog, now, skew)
        except Refused as exc:
            out[index] = exc
            audits.append({"channel": "http", "actor": actor_of(provider_id),
                           "action": exc.action, "provider_id": result.provider_id,
                           "reason": str(exc), "details": {
                               "result_id": result.result_id,
                               "definition_id": result.definition_id}})
        except InvalidResult as exc:
            out[index] = exc
        else:
            items.append(ingest.item(result, decided(result, definition, now),
                                     traceparent=traceparent))
            where.append(index)
    if audits:
        async with engine.begin() as conn:
            await audit.record_all(conn, audits, traceparent=traceparent)
    for index, it, stored in zip(where, items, await store.store(items), strict=True):
        if stored.outcome == "conflict":
            out[index] = Conflict(it.result.result_id, stored.event_id)
        else:
            out[index] = Submitted(stored.event_id or it.event_id,
                                   assessment_id_for(provider_id, it.result.result_id),
                                   duplicate=stored.outcome == "duplicate")
    return [o for o in out if o is not None]


async def submit(engine: AsyncEngine, store: IngestStore, result: AssessmentResultSubmitted,
                 provider_id: str, *, catalog: Catalog, skew: timedelta,
                 traceparent: str | None) -> Submitted:
    """One result (`submit_many`); raises why it was refused."""
    [outcome] = await submit_many(engine, store, [result], provider_id, catalog=catalog,
                                  skew=skew, traceparent=traceparent)
    if isinstance(outcome, InvalidResult):
        raise outcome
    return outcome


def authenticated_source(item: Incoming) -> tuple[str, Channel]:
    """(ce_source to judge by, channel). On a provider's own topic only its principal can
    write (broker ACL), so the topic, not the record's self-declared ce_source, says who
    sent it. The shared results topic is internal: HTTP ingest (which sets ce_source from
    the API key) and trusted in-cluster producers write there (ADR 11)."""
    match = _PROVIDER_TOPIC.match(item.record.topic)
    if match:
        return f"/providers/{match.group(1)}", "kafka"
    return item.envelope.source, "kafka"


async def on_conflicting_duplicates(conn: AsyncConnection,
                                    conflicts: list[tuple[Incoming, str]]) -> None:
    """A result record that reuses a ce_id for another payload is dead-lettered by the
    consumer; the sender also finds the refusal in its audit log."""
    for item, reason in conflicts:
        result = item.event
        assert isinstance(result, AssessmentResultSubmitted)
        source, channel = authenticated_source(item)
        sender = sender_provider(source)
        await audit.record(
            conn, channel=channel, actor=actor_of(sender), action="result.conflicting-duplicate",
            provider_id=sender, reason=reason, traceparent=item.traceparent,
            details={"topic": item.record.topic, "ce_id": item.envelope.id,
                     "result_id": escaped(result.result_id)})  # not checked yet


# Accepted results of a batch by natural key (provider id, result id): the item, its
# decision, its traceparent and how many copies of it the batch held.
_Accepted = dict[tuple[str, str], tuple[Incoming, AssessmentDecided, str | None]]


async def on_results(conn: AsyncConnection, items: list[Incoming], *, live: LiveCatalog,
                     skew: timedelta) -> dict[int, str]:
    """Decides each acceptable result once; refused and invalid ones are dead-lettered
    with their reason. Kafka batch handler of topics.RESULTS and the provider topics."""
    now = datetime.now(UTC)
    catalog = live.current
    refused: dict[int, str] = {}
    accepted: _Accepted = {}
    copies: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        result = item.event
        assert isinstance(result, AssessmentResultSubmitted)
        source, channel = authenticated_source(item)
        traceparent = item.traceparent
        try:
            # The dead letter drops item.outgoing: a refusal's audit record is written
            # directly (by screen, in this batch's transaction).
            definition = await screen(
                conn, result, source=source, channel=channel, catalog=catalog, now=now,
                skew=skew, traceparent=traceparent,
                context={"topic": item.record.topic, "ce_id": item.envelope.id})
        except InvalidResult as exc:
            refused[index] = str(exc)
            continue
        natural = (result.provider_id, result.result_id)
        if natural in accepted:
            # The same result twice in one batch: the first decides, both are counted.
            copies[natural] += 1
            continue
        copies[natural] = 1
        accepted[natural] = (item, decided(result, definition, now), traceparent)
    if accepted:
        await _record_decisions(conn, accepted, copies, now)
    return refused


# One cached statement per batch whatever its size (arrays in): `decisions.decide_from`,
# the statement HTTP ingest's flush runs too.
_DECIDE = sa.text(decisions.decide_from(
    "(SELECT *, CAST(:now AS timestamptz) AS dat "
    "FROM unnest(CAST(:pids AS text[]), CAST(:rids AS text[]), CAST(:aids AS uuid[]), "
    "CAST(:dids AS text[]), CAST(:vers AS int[]), CAST(:lkeys AS text[]), "
    "CAST(:achieved AS boolean[]), CAST(:reasons AS text[]), CAST(:copies AS int[]), "
    "CAST(:ce_ids AS text[]), CAST(:trace_ids AS text[])) "
    "AS u(p, r, a, d, v, l, ok, why, n, ce, tr)) AS u"))


async def _record_decisions(conn: AsyncConnection, accepted: _Accepted,
                            copies: dict[tuple[str, str], int], now: datetime) -> None:
    """Stores the decisions; only a result decided for the first time is published."""
    rows = list(accepted.values())
    decisions_ = [d for _, d, _ in rows]
    found = (await conn.execute(_DECIDE, {
        **decisions.columns(decisions_),
        "copies": [copies[(d.provider_id, d.result_id)] for d in decisions_],
        "ce_ids": [i.envelope.id for i, _, _ in rows],
        "trace_ids": [trace_id_of(i.envelope.traceparent) for i, _, _ in rows],
        "now": now})).all()
    inserted = {(p, r) for p, r, first in found if first}
    for natural, (item, decision, traceparent) in accepted.items():
        if natural in inserted:
            item.outgoing.append(decisions.record(decision, traceparent))


async def status_of(engine: AsyncEngine, provider_id: str, result_id: str) -> dict[str, Any]:
    """What became of a provider's result: pending until decided — over HTTP it is decided
    when the 202 comes, over Kafka once the consumer has it (another provider's result ids
    are invisible: they read as pending)."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(ResultRecord).where(
            col(ResultRecord.provider_id) == provider_id,
            col(ResultRecord.result_id) == result_id))).mappings().first()
    if row is None:
        return {"result_id": result_id, "status": "pending"}
    return {"result_id": result_id, "status": "decided", "achieved": row["achieved"],
            "reason": row["reason"], "assessment_id": str(row["assessment_id"]),
            "submissions": row["submissions"], "trace_id": row["trace_id"]}
