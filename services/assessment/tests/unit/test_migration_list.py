"""assessment's migrations are numbered by their place in the list: the newest step is at the
number its docs give (that no step is listed twice: tests/contract/test_migration_lists.py)."""

from microcred_assessment.models import MIGRATIONS


def test_migration_7_drops_the_index_no_query_reads() -> None:
    assert len(MIGRATIONS) == 7
    assert MIGRATIONS[6].__name__ == "drop_unread_learner_index"
