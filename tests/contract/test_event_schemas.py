"""Every event type's payload schema is kept in docs/events/schemas/<ce_type>.json, and the
code may only change it compatibly: a change that would break an existing consumer or
publisher (docs/events.md) fails here unless the type's version is raised, i.e. it becomes a
new type `....vN+1` with its own snapshot. A compatible change fails too, until the snapshot
is refreshed, so that the kept schemas are always the code's.

Fix: `uv run python -m microcred_shared.contract.tools schemas --write` (it refuses to
overwrite a snapshot with a breaking change)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from microcred_shared.contract import schemas as event_schemas

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / event_schemas.SNAPSHOT_DIR
REFRESH = "run `uv run python -m microcred_shared.contract.tools schemas --write`"
CURRENT = event_schemas.current_schemas()


@pytest.fixture(scope="module")
def snapshots() -> dict[str, dict[str, Any]]:
    return event_schemas.load_snapshots(SNAPSHOTS)


def test_every_event_type_is_named_with_a_version() -> None:
    found = event_schemas.compare(CURRENT, CURRENT)
    assert found.bad_names == [], found.lines()
    assert len(CURRENT) >= 17  # every module with event types was imported


@pytest.mark.parametrize("ce_type", sorted(CURRENT))
def test_the_code_schema_does_not_break_the_kept_snapshot(
        ce_type: str, snapshots: dict[str, dict[str, Any]]) -> None:
    if ce_type not in snapshots:
        pytest.fail(f"{ce_type} is a new event type without a snapshot: {REFRESH}")
    found = event_schemas.compare({ce_type: snapshots[ce_type]},
                                  {ce_type: CURRENT[ce_type]})
    assert not found.breaking, "\n".join(found.lines())


def test_the_snapshots_are_the_code_schemas(snapshots: dict[str, dict[str, Any]]) -> None:
    found = event_schemas.compare(snapshots, CURRENT)
    stale = [*found.refresh, *found.new_types]
    assert not stale, "\n".join(found.lines()) + "\n" + REFRESH


def test_no_snapshot_outlives_its_event_type(snapshots: dict[str, dict[str, Any]]) -> None:
    gone = [t for t in snapshots if t not in CURRENT]
    assert not gone, (f"snapshots without an event type: {gone}; an event type is removed "
                      f"only once no consumer reads it; then {REFRESH}")


def test_snapshot_files_are_written_the_one_way(snapshots: dict[str, dict[str, Any]]) -> None:
    for ce_type, schema in snapshots.items():
        text = (SNAPSHOTS / f"{ce_type}.json").read_text("utf-8")
        assert text == event_schemas.dumps(schema), f"{ce_type}.json: {REFRESH}"
