"""Keep the event contract in the repo up to date with the code.

    python -m microcred_shared.contract.tools schemas            # check the snapshots
    python -m microcred_shared.contract.tools schemas --write    # refresh them (not if breaking)
    python -m microcred_shared.contract.tools asyncapi           # check docs/asyncapi.yaml
    python -m microcred_shared.contract.tools asyncapi --write   # regenerate it
    python -m microcred_shared.contract.tools asyncapi --stdout [--json]

Exit status 1 when something is out of date (or a schema change is breaking). See
docs/events.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from microcred_shared.contract import asyncapi
from microcred_shared.contract import schemas as event_schemas

ASYNCAPI_FILE = Path("docs") / "asyncapi.yaml"  # relative to the repository root


def asyncapi_text(*, as_json: bool = False) -> str:
    doc = asyncapi.document()
    return asyncapi.to_json(doc) if as_json else asyncapi.to_yaml(doc)


def run_schemas(directory: Path, write: bool) -> int:
    if write:
        found = event_schemas.write_snapshots(directory)
        blocked = bool(found.breaking or found.bad_names)
        for line in found.lines():
            print(line)
        if blocked:
            print("nothing written: raise the version of a type instead of breaking it")
            return 1
        print(f"snapshots up to date in {directory}")
        return 0
    found = event_schemas.compare(event_schemas.load_snapshots(directory),
                                  event_schemas.current_schemas())
    for line in found.lines():
        print(line)
    if not found.up_to_date:
        print("run: python -m microcred_shared.contract.tools schemas --write")
        return 1
    print(f"{len(event_schemas.event_types())} event schemas match {directory}")
    return 0


def run_asyncapi(path: Path, write: bool, stdout: bool, as_json: bool) -> int:
    text = asyncapi_text(as_json=as_json or path.suffix == ".json")
    if stdout:
        sys.stdout.write(text)
        return 0
    if write:
        path.write_text(text, "utf-8")
        print(f"wrote {path}")
        return 0
    if not path.is_file() or path.read_text("utf-8") != text:
        print(f"{path} differs from the code: "
              "run python -m microcred_shared.contract.tools asyncapi --write")
        return 1
    print(f"{path} matches the code")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m microcred_shared.contract.tools",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    schemas = sub.add_parser("schemas", help="JSON Schema snapshots of the event types")
    schemas.add_argument("--write", action="store_true", help="refresh the snapshots")
    schemas.add_argument("--dir", type=Path, help="default: docs/events/schemas")
    doc = sub.add_parser("asyncapi", help="the AsyncAPI document")
    doc.add_argument("--write", action="store_true", help="regenerate the file")
    doc.add_argument("--stdout", action="store_true", help="print it instead")
    doc.add_argument("--json", action="store_true", help="JSON rather than YAML (--stdout)")
    doc.add_argument("--file", type=Path, help="default: docs/asyncapi.yaml")
    args = parser.parse_args(argv)
    if args.command == "schemas":
        return run_schemas(args.dir or event_schemas.snapshot_dir(), args.write)
    path = args.file or (Path() if args.stdout else event_schemas.repo_root()) / ASYNCAPI_FILE
    return run_asyncapi(path, args.write, args.stdout, args.json)


if __name__ == "__main__":
    sys.exit(main())
