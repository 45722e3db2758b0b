"""Each service's migrations are numbered by their place in its list: a step listed twice
runs at the wrong number on a fresh database and shifts every later number for a database
that has applied part of the list (registry's migration 16 was, until `78f87a9`)."""

import importlib

import pytest

LISTS = ["microcred_assessment.models", "microcred_issuance.migrations",
         "microcred_registry.migrations", "microcred_notify.models"]


@pytest.mark.parametrize("module", LISTS)
def test_each_migration_step_is_listed_once(module: str) -> None:
    steps = importlib.import_module(module).MIGRATIONS
    assert steps, f"{module} lists no migration"
    twice = sorted({step.__name__ for step in steps if steps.count(step) > 1})
    assert twice == []
