"""issuance's migrations are numbered by their place in the list: a step listed twice
runs at the wrong number on a fresh database and shifts every later number for one that
has applied part of the list."""

from microcred_issuance.migrations import MIGRATIONS


def test_each_migration_step_is_listed_once() -> None:
    twice = sorted({step.__name__ for step in MIGRATIONS if MIGRATIONS.count(step) > 1})
    assert twice == []


def test_migration_8_drops_the_index_no_query_reads() -> None:
    assert len(MIGRATIONS) == 8
    assert MIGRATIONS[7].__name__ == "drop_unread_provider_index"
