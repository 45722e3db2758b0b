"""assessment's migrations are numbered by their place in the list: a step listed twice
runs at the wrong number on a fresh database and shifts every later number for one that
has applied part of the list."""

from microcred_assessment.models import MIGRATIONS


def test_each_migration_step_is_listed_once() -> None:
    twice = sorted({step.__name__ for step in MIGRATIONS if MIGRATIONS.count(step) > 1})
    assert twice == []


def test_migration_7_drops_the_index_no_query_reads() -> None:
    assert len(MIGRATIONS) == 7
    assert MIGRATIONS[6].__name__ == "drop_unread_learner_index"
