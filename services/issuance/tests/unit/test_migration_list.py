"""issuance's migrations are numbered by their place in the list: the newest step is at the
number its docs give (that no step is listed twice: tests/contract/test_migration_lists.py)."""

from microcred_issuance.migrations import MIGRATIONS


def test_migration_8_drops_the_index_no_query_reads() -> None:
    assert len(MIGRATIONS) == 8
    assert MIGRATIONS[7].__name__ == "drop_unread_provider_index"
