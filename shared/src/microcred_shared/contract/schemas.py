"""The JSON Schema of every event type, and the snapshots of them kept in the repo.

Each event type (`ce_type`, ending in its version `.vN`) has a snapshot
`docs/events/schemas/<ce_type>.json`: the schema a partner institution or a consumer built
against. The code's schema may only evolve compatibly (`schema_compat`); a breaking change is
a new type `....vN+1` with its own snapshot, beside the old one for as long as the old type
exists. `python -m microcred_shared.contract.tools schemas` checks, `--write` refreshes
(and refuses a breaking refresh). docs/events.md says it for people.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microcred_shared.contract.events import EVENT_TYPES, Event
from microcred_shared.contract.schema_compat import Change, breaking_changes

# Every module that defines event types: importing them fills EVENT_TYPES.
EVENT_MODULES = (
    "microcred_shared.contract.events",
    "microcred_shared.contract.events_providers",
    "microcred_shared.contract.events_learners",
    "microcred_shared.contract.events_employers",
)
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CE_TYPE = re.compile(r"^ca\.microcred\.[a-z0-9-]+(\.[a-z0-9-]+)*\.v[1-9][0-9]*$")
SNAPSHOT_DIR = Path("docs") / "events" / "schemas"  # relative to the repository root


def event_types() -> dict[str, type[Event]]:
    """Every event type the backbone knows, by `ce_type`, sorted."""
    for name in EVENT_MODULES:
        importlib.import_module(name)
    return dict(sorted(EVENT_TYPES.items()))


def schema_of(cls: type[Event]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type's payload: what a consumer
    validates, so what a publisher must send."""
    return {"$schema": JSON_SCHEMA_DIALECT, **cls.model_json_schema(mode="validation")}


def current_schemas() -> dict[str, dict[str, Any]]:
    return {ce_type: schema_of(cls) for ce_type, cls in event_types().items()}


def version_of(ce_type: str) -> int:
    return int(ce_type.rsplit(".v", 1)[1])


def dumps(schema: dict[str, Any]) -> str:
    """The one serialisation of a snapshot, so that equal schemas are equal files."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def repo_root(start: Path | None = None) -> Path:
    """The workspace root (where uv.lock is), from this module's own place in the tree."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        if (parent / "uv.lock").is_file() and (parent / "docs").is_dir():
            return parent
    raise FileNotFoundError("not inside the microcred repository: pass the directory")


def snapshot_dir() -> Path:
    return repo_root() / SNAPSHOT_DIR


def load_snapshots(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name.removesuffix(".json"): json.loads(p.read_text("utf-8"))
            for p in sorted(directory.glob("*.json"))}


@dataclass
class Comparison:
    """The code's schemas held against the snapshots."""

    new_types: list[str] = field(default_factory=list)  # no snapshot yet
    gone_types: list[str] = field(default_factory=list)  # a snapshot, no code
    breaking: dict[str, list[Change]] = field(default_factory=dict)
    refresh: list[str] = field(default_factory=list)  # compatible, but the snapshot differs
    bad_names: list[str] = field(default_factory=list)  # ce_type without a `.vN` version

    @property
    def up_to_date(self) -> bool:
        return not (self.new_types or self.gone_types or self.breaking or self.refresh
                    or self.bad_names)

    def lines(self) -> list[str]:
        out = [f"{t}: not a versioned ce_type (ca.microcred.<name>.v<N>)" for t in
               self.bad_names]
        for ce_type, changes in self.breaking.items():
            out.append(f"{ce_type}: BREAKING change against its snapshot; keep this type as "
                       f"it is and add a new type .v{version_of(ce_type) + 1} instead:")
            out += [f"    {change}" for change in changes]
        out += [f"{t}: compatible change, refresh the snapshot" for t in self.refresh]
        out += [f"{t}: new event type, write its snapshot" for t in self.new_types]
        out += [f"{t}: snapshot of a type the code no longer has (remove it once no consumer "
                "reads it)" for t in self.gone_types]
        return out


def compare(snapshots: dict[str, dict[str, Any]],
            current: dict[str, dict[str, Any]]) -> Comparison:
    result = Comparison()
    result.bad_names = [t for t in current if not CE_TYPE.match(t)]
    result.new_types = [t for t in current if t not in snapshots]
    result.gone_types = [t for t in snapshots if t not in current]
    for ce_type, schema in current.items():
        old = snapshots.get(ce_type)
        if old is None or old == schema:
            continue
        changes = breaking_changes(old, schema)
        if changes:
            result.breaking[ce_type] = changes
        else:
            result.refresh.append(ce_type)
    return result


def write_snapshots(directory: Path) -> Comparison:
    """Bring the snapshots up to date with the code, unless a change is breaking (then
    nothing is written). Returns what was found."""
    current = current_schemas()
    found = compare(load_snapshots(directory), current)
    if found.breaking or found.bad_names:
        return found
    directory.mkdir(parents=True, exist_ok=True)
    for ce_type in [*found.new_types, *found.refresh]:
        (directory / f"{ce_type}.json").write_text(dumps(current[ce_type]), "utf-8")
    for ce_type in found.gone_types:
        (directory / f"{ce_type}.json").unlink()
    return found
