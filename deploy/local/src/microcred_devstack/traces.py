"""A minimal trace backend for the local stack: receives OTLP/HTTP exports and appends
each span to a JSON-lines file; `python -m microcred_devstack trace ID` reads it back.

`python -m microcred_devstack.traces --port 4318 --file .state/traces.jsonl`
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

from microcred_testkit.backbone import OtlpCollector


class FileCollector(OtlpCollector):
    def __init__(self, port: int, path: Path) -> None:
        super().__init__(port)
        self._path = path
        self._lock = threading.Lock()

    def _add(self, request: Any) -> None:
        lines = []
        for rs in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    lines.append(json.dumps({
                        "service": attrs.get("service.name"), "name": span.name,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano}))
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))


def read_trace(path: Path, trace_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    spans = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if trace_id in line:
                span = json.loads(line)
                if span["trace_id"] == trace_id:
                    spans.append(span)
    return sorted(spans, key=lambda s: s["start"])


def tree_lines(spans: list[dict[str, Any]]) -> list[str]:
    """Indented `service  span name  duration` lines, children under their parent."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        children.setdefault(s["parent"] if s["parent"] in ids else "", []).append(s)
    start = min((s["start"] for s in spans), default=0)
    out: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            offset = (s["start"] - start) / 1e6
            took = (s["end"] - s["start"]) / 1e6
            out.append(f"{offset:8.1f} ms {'  ' * depth}{s['service']}: {s['name']} "
                       f"({took:.1f} ms)")
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--file", default=".state/traces.jsonl")
    args = parser.parse_args()
    path = Path(args.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    collector = FileCollector(args.port, path)
    print(f"trace collector on 127.0.0.1:{args.port}, writing {path}", flush=True)
    collector.server.serve_forever()


if __name__ == "__main__":
    main()
