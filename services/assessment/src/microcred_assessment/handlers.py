"""Use cases of the assessment service. They take their I/O as arguments."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_assessment import audit
from microcred_assessment.domain import InvalidResult, Refused, check, decide, sender_provider
from microcred_assessment.models import ResultRecord
from microcred_shared import topics
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


def authenticated_source(item: Incoming) -> tuple[str, str]:
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
    rows = [{
        "provider_id": d.provider_id, "result_id": d.result_id, "assessment_id": d.assessment_id,
        "definition_id": d.definition_id, "definition_version": d.definition_version,
        "learner_key": d.learner_key, "achieved": d.achieved, "reason": d.reason,
        "submissions": copies[(d.provider_id, d.result_id)], "ce_id": item.envelope.id,
        "trace_id": trace_id_of(item.envelope.traceparent), "decided_at": now,
    } for item, d in accepted.values()]
    table = ResultRecord.__table__
    stmt = pg_insert(table).values(rows)
    # A resubmission of a known result (new ce_id, same provider result id) only counts.
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.provider_id, table.c.result_id],
        set_={"submissions": table.c.submissions + stmt.excluded.submissions},
    ).returning(table.c.provider_id, table.c.result_id,
                # PostgreSQL: xmax is 0 on a freshly inserted row, set on an updated one.
                sa.literal_column("xmax = 0"))
    inserted = {(p, r) for p, r, first in (await conn.execute(stmt)).all() if first}
    for natural, (item, decision) in accepted.items():
        if natural in inserted:
            item.outgoing.append(event_record(topics.DECISIONS, decision, SOURCE,
                                              traceparent=item.traceparent))
    return refused
