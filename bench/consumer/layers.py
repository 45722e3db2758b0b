"""Python calls per consumed batch by layer, from the services' cProfile dumps (issue 12).

    mkdir -p /tmp/prof
    MICROCRED_CPROFILE=/tmp/prof PYTHONPATH=bench/consumer/layers \
        uv run python bench/e2e/run.py --n 600 --rate 50 --chunk 1 --skip-baseline \
        --latency-rate 0 --latency-rounds 0 --idle-probe 0 &
    # once it logs "publishing": kill -USR1 <each service pid>; then every few seconds
    # until the run ends: kill -USR2 <each service pid>
    uv run python bench/consumer/layers.py /tmp/prof/*.prof

Batches are counted by a function the consumer path calls once per batch (`_keep` since
wave 12, `records_of` before). cProfile counts each resumption of a coroutine as a call,
and its times are inflated and distorted by its own overhead: read the call counts.
"""

from __future__ import annotations

import collections
import pstats
import re
import sys

PACKAGES = ("faststream", "fast_depends", "aiokafka", "sqlalchemy", "asyncpg", "greenlet",
            "pydantic", "opentelemetry", "anyio")
ONCE_PER_BATCH = ("_keep", "records_of")


def layer(fn: tuple[str, int, str]) -> str:
    path, _, name = fn
    if path == "~":
        return "builtins"
    for package in PACKAGES:
        if f"/{package}/" in path:
            return package
    if m := re.search(r"/(microcred_\w+)/(\w+)", path):
        return f"shared.{m.group(2)}" if m.group(1) == "microcred_shared" else m.group(1)
    if "/asyncio/" in path:
        return "asyncio"
    return "other"


def main() -> None:
    for path in sys.argv[1:]:
        stats: dict = pstats.Stats(path).stats  # type: ignore[attr-defined]
        batches = max((cc for fn, (cc, *_) in stats.items()
                       if fn[2] in ONCE_PER_BATCH and fn[0].endswith("consumer.py")), default=0)
        calls: collections.Counter[str] = collections.Counter()
        for fn, (_, nc, *_) in stats.items():
            calls[layer(fn)] += nc
        per = max(batches, 1)
        print(f"{path.rsplit('/', 1)[-1]}: {batches} batches, "
              f"{sum(calls.values()) / per:.0f} calls per batch")
        for name, count in calls.most_common(12):
            print(f"  {name:24s} {count / per:7.0f}")


if __name__ == "__main__":
    main()
