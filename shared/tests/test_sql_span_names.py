"""What an operator reads for a database span in a trace: the statement's verb and table."""

from __future__ import annotations

import pytest

from microcred_shared.telemetry import sql_span_name


@pytest.mark.parametrize(("statement", "name"), [
    ("INSERT INTO outbox (topic) VALUES ($1)", "INSERT outbox"),
    ("update notifications SET state = $1", "UPDATE notifications"),
    ("DELETE FROM inbox WHERE id = $1", "DELETE inbox"),
    ("SELECT id FROM credentials WHERE id = $1", "SELECT credentials"),
    ("BEGIN;", "BEGIN"),
    (";", "ping"),
    # One statement that writes two tables (assessment's ingest flush) names both, and the
    # upsert's `DO UPDATE` is not a third write.
    ("WITH u AS (SELECT * FROM unnest($1)), l AS (INSERT INTO ingested_results SELECT * FROM u "
     "ON CONFLICT (a) DO UPDATE SET a = excluded.a RETURNING *), "
     "o AS (INSERT INTO outbox SELECT * FROM l) SELECT 1",
     "INSERT ingested_results, INSERT outbox"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
])
def test_a_database_span_says_what_its_statement_does(statement: str, name: str) -> None:
    assert sql_span_name(statement) == name
