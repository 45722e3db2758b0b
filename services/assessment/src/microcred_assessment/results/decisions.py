"""Storing a decision: the one statement both ways in use, the Kafka consumer's batch
(`handlers.on_results`) and HTTP ingest's flush (`ingest.IngestStore`, which decides at
the door: ADR 40), and the outbox record of a decision.

A result is decided once per provider result id (`results`' primary key): the first
submission inserts its decision, every later one (over Kafka or HTTP, the same content or
not) only adds to `submissions`. PostgreSQL's xmax is 0 on a row the statement inserted
and set on one it updated: only a result decided for the first time is published. Rows are
written in (provider id, result id) order, the lock order of both callers, so a flush and a
consumer batch that hold some of the same results wait for each other, never deadlock.
"""

from __future__ import annotations

from typing import Any

from microcred_shared import outbox
from microcred_shared.contract import topics
from microcred_shared.contract.events import AssessmentDecided

SOURCE = "/microcred/assessment"

# The columns `rows` must give, in this order: p provider id, r result id, a assessment
# id, d definition id, v definition version, l learner key, ok achieved, why reason,
# n submissions (the copies it counts), ce the submission's event id, tr its trace id,
# dat when it was decided. `rows` is a FROM item (unnest of arrays, or a CTE) with one row
# per provider result: ON CONFLICT cannot touch a row twice in one statement.
_DECIDE = (
    "INSERT INTO results (provider_id, result_id, assessment_id, definition_id, "
    "definition_version, learner_key, achieved, reason, submissions, ce_id, trace_id, "
    "decided_at) SELECT p, r, a, d, v, l, ok, why, n, ce, tr, dat FROM {rows} "
    "ORDER BY p, r "
    "ON CONFLICT (provider_id, result_id) DO UPDATE "
    "SET submissions = results.submissions + excluded.submissions "
    "RETURNING provider_id, result_id, xmax = 0 AS first")


def decide_from(rows: str) -> str:
    """The statement that stores the decisions of `rows` (see `_DECIDE`): it returns
    (provider id, result id, first) per row, first when the result was decided now."""
    return _DECIDE.format(rows=rows)


def columns(decided: list[AssessmentDecided]) -> dict[str, list[Any]]:
    """The decisions' own columns as the callers' arrays (`pids`, `rids`, `aids`, `dids`,
    `vers`, `lkeys`, `achieved`, `reasons`), in the order of `decided`."""
    return {"pids": [d.provider_id for d in decided], "rids": [d.result_id for d in decided],
            "aids": [d.assessment_id for d in decided],
            "dids": [d.definition_id for d in decided],
            "vers": [d.definition_version for d in decided],
            "lkeys": [d.learner_key for d in decided],
            "achieved": [d.achieved for d in decided], "reasons": [d.reason for d in decided]}


def record(decision: AssessmentDecided, traceparent: str | None) -> outbox.Outgoing:
    """The outbox record that tells issuance: on topics.DECISIONS, keyed by learner."""
    return outbox.event_record(topics.DECISIONS, decision, SOURCE, traceparent=traceparent)
