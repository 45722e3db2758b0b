"""registry's migrations are numbered by their place in the list: the newest step is at the
number its docs give (that no step is listed twice: tests/contract/test_migration_lists.py)."""

from microcred_registry.migrations import MIGRATIONS


def test_migration_16_is_the_indexes_a_query_reads() -> None:
    assert len(MIGRATIONS) == 16
    assert MIGRATIONS[15].__name__ == "index_credentials_for_their_reads"
