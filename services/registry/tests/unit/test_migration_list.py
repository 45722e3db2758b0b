"""The registry's migrations are numbered by their place in the list: a step listed twice
runs at the wrong number on a fresh database and shifts every later number for one that
has applied part of the list."""

from microcred_registry.migrations import MIGRATIONS


def test_each_migration_step_is_listed_once() -> None:
    twice = sorted({step.__name__ for step in MIGRATIONS if MIGRATIONS.count(step) > 1})
    assert twice == []


def test_migration_16_is_the_indexes_a_query_reads() -> None:
    assert len(MIGRATIONS) == 16
    assert MIGRATIONS[15].__name__ == "index_credentials_for_their_reads"
