"""Use cases of the assessment service. They take their I/O as arguments."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_assessment import audit
from microcred_assessment.domain import InvalidResult, Refused, check, decide, sender_provider
from microcred_shared import topics
from microcred_shared.audit import Channel
from microcred_shared.consumer import Incoming
from microcred_shared.events import (
    NAMESPACE,
    AssessmentDecided,
    AssessmentResultSubmitted,
    learner_key,
)
from microcred_shared.outbox import event_record
from microcred_shared.projection import LiveCatalog
from microcred_shared.telemetry import trace_id_of

SOURCE = "/microcred/assessment"
_PROVIDER_TOPIC = re.compile(topics.PROVIDER_RESULTS_PATTERN)


def actor_of(provider_id: str | None) -> str:
    return f"provider:{provider_id}" if provider_id else "unknown"


def authenticated_source(item: Incoming) -> tuple[str, Channel]:
    """(ce_source to judge by, channel). On a provider's own topic only its principal can
    write (broker ACL), so the topic, not the record's self-declared ce_source, says who
    sent it. The shared results topic is internal: HTTP ingest (which sets ce_source from
    the API key) and trusted in-cluster producers write there (ADR 11)."""
    match = _PROVIDER_TOPIC.match(item.record.topic)
    if match:
        return f"/providers/{match.group(1)}", "kafka"
    return item.envelope.source, "kafka"


def assessment_id_for(provider_id: str, result_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"assessment:{provider_id}:{result_id}")


# One cached statement per batch whatever its size (arrays in). A resubmission of a known
# result (new ce_id, same provider result id) only counts; PostgreSQL's xmax is 0 on a
# freshly inserted row and set on an updated one.
_DECIDE = sa.text(
    "INSERT INTO results (provider_id, result_id, assessment_id, definition_id, "
    "definition_version, learner_key, achieved, reason, submissions, ce_id, trace_id, "
    "decided_at) SELECT p, r, a, d, v, l, ok, why, n, ce, tr, CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:pids AS text[]), CAST(:rids AS text[]), CAST(:aids AS uuid[]), "
    "CAST(:dids AS text[]), CAST(:vers AS int[]), CAST(:lkeys AS text[]), "
    "CAST(:achieved AS boolean[]), CAST(:reasons AS text[]), CAST(:copies AS int[]), "
    "CAST(:ce_ids AS text[]), CAST(:trace_ids AS text[])) "
    "AS u(p, r, a, d, v, l, ok, why, n, ce, tr) "
    "ON CONFLICT (provider_id, result_id) DO UPDATE "
    "SET submissions = results.submissions + excluded.submissions "
    "RETURNING provider_id, result_id, xmax = 0")


async def on_results(conn: AsyncConnection, items: list[Incoming], *, live: LiveCatalog,
                     skew: timedelta) -> dict[int, str]:
    now = datetime.now(UTC)
    catalog = live.current
    refused: dict[int, str] = {}
    accepted: dict[tuple[str, str], tuple[Incoming, AssessmentDecided]] = {}
    copies: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        result = item.event
        assert isinstance(result, AssessmentResultSubmitted)
        source, channel = authenticated_source(item)
        try:
            definition = check(result, source, catalog, now, skew)
        except Refused as exc:
            refused[index] = str(exc)
            # The dead letter drops item.outgoing: the audit record is written directly.
            await audit.record(
                conn, channel=channel, actor=actor_of(sender_provider(source)), action=exc.action,
                provider_id=result.provider_id, reason=str(exc),
                traceparent=item.traceparent,
                details={"topic": item.record.topic, "result_id": result.result_id,
                         "definition_id": result.definition_id, "ce_id": item.envelope.id})
            continue
        except InvalidResult as exc:
            refused[index] = str(exc)
            continue
        natural = (result.provider_id, result.result_id)
        if natural in accepted:
            # The same result twice in one batch: the first decides, both are counted.
            copies[natural] += 1
            continue
        copies[natural] = 1
        assert definition.pass_rule is not None  # check() refuses stacks
        decision = decide(result, definition.pass_rule)
        accepted[natural] = (item, AssessmentDecided(
            assessment_id=assessment_id_for(*natural), provider_id=result.provider_id,
            result_id=result.result_id, definition_id=definition.id,
            definition_version=definition.version, learner=result.learner,
            learner_key=learner_key(result.learner.email), achieved=decision.achieved,
            reason=decision.reason, score=result.score, rubric_level=result.rubric_level,
            assessed_at=result.assessed_at, decided_at=now,
        ))
    if not accepted:
        return refused
    pairs = list(accepted.values())
    rows = (await conn.execute(_DECIDE, {
        "pids": [d.provider_id for _, d in pairs], "rids": [d.result_id for _, d in pairs],
        "aids": [d.assessment_id for _, d in pairs],
        "dids": [d.definition_id for _, d in pairs],
        "vers": [d.definition_version for _, d in pairs],
        "lkeys": [d.learner_key for _, d in pairs], "achieved": [d.achieved for _, d in pairs],
        "reasons": [d.reason for _, d in pairs],
        "copies": [copies[(d.provider_id, d.result_id)] for _, d in pairs],
        "ce_ids": [i.envelope.id for i, _ in pairs],
        "trace_ids": [trace_id_of(i.envelope.traceparent) for i, _ in pairs],
        "now": now})).all()
    inserted = {(p, r) for p, r, first in rows if first}
    for natural, (item, decided) in accepted.items():
        if natural in inserted:
            item.outgoing.append(event_record(topics.DECISIONS, decided, SOURCE,
                                              traceparent=item.traceparent))
    return refused
