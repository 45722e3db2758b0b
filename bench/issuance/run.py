"""CPU per credential of issuance's consumer path, in process: `issuing.handlers.issue`
on realistic batches of achieved decisions (the seed catalogue's definitions, one issuer
per batch), with the database calls stubbed. What it measures is what the service does per
credential besides its round trips: build the document, sign it (eddsa-rdfc-2022), build
and encode its announcement.

    uv run --frozen python bench/issuance/run.py [--n 3000] [--batch 100] [--rounds 5]
    uv run --frozen python bench/issuance/run.py --against /tmp/old-tree   # side by side
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microcred_issuance.issuing import handlers
from microcred_issuance.keys.domain import SigningKey, multikey
from microcred_issuance.keys.signing import Signer
from microcred_issuance.status import lists
from microcred_shared.catalog import load_catalog
from microcred_shared.contract.events import AssessmentDecided, learner_key
from microcred_shared.runtime import settle_heap
from microcred_shared.settings import REPO_ROOT
from microcred_testkit.backbone import learner

BASE = "https://registry.microcred.example"
CATALOG = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")


class _Driver:
    """asyncpg's connection, inside the consumer's transaction (as in the service)."""

    def is_in_transaction(self) -> bool:
        return True

    async def execute(self, *_: Any, **__: Any) -> None:
        return None

    async def fetch(self, *_: Any, **__: Any) -> list[Any]:
        return []


class _Conn:
    async def execute(self, *_: Any, **__: Any) -> None:
        return None

    async def get_raw_connection(self) -> Any:
        return SimpleNamespace(driver_connection=_Driver())


class _Keys:
    def __init__(self) -> None:
        self._keys: dict[str, SigningKey] = {}

    async def ensure_loaded(self, provider_id: str) -> None:
        return None

    def active(self, provider_id: str) -> SigningKey:
        if provider_id not in self._keys:
            private = Ed25519PrivateKey.generate()
            self._keys[provider_id] = SigningKey(provider_id, "key-1", private,
                                                 multikey(private))
        return self._keys[provider_id]


_next_index = [0]


async def _reserve(conn: Any, signer: Any, provider_id: str, count: int,
                   allocated: Any = None) -> tuple[int, list[Any]]:
    # A fresh range per call, as `lists.reserve` hands out: every credential points at its
    # own status entry (one index for all, as before wave 16, made each entry a node the
    # signing path remembers and reuses, which no real burst does).
    _next_index[0] += count
    return _next_index[0] - count, []


def _decision(d: Any, n: int) -> AssessmentDecided:
    who = learner(f"bench{n}")
    outcome: dict[str, Any] = {}
    if d.pass_rule.kind == "score":
        outcome["score"] = max(d.pass_rule.min_score, 90)
    elif d.pass_rule.kind == "rubric":
        outcome["rubric_level"] = d.pass_rule.levels[-1]
    return AssessmentDecided(
        assessment_id=uuid.uuid4(), provider_id=d.provider_id, result_id=f"r-{n}",
        definition_id=d.id, definition_version=d.version, learner=who,
        learner_key=learner_key(who.email), achieved=True, reason="passed",
        assessed_at=datetime.now(UTC), decided_at=datetime.now(UTC), **outcome)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout (`git archive <ref> | tar -x -C DIR`, `uv sync`): "
                             "this script runs in both at the same time on one core")
    parser.add_argument("--cpu", type=int, default=1, help="the core both share (--against)")
    args = parser.parse_args()
    if args.against is not None:
        _side_by_side(args)
        return
    lists.reserve = _reserve  # type: ignore[assignment]
    keys = _Keys()
    signer = Signer(keys, BASE, "eddsa-rdfc-2022")  # type: ignore[arg-type]
    live = SimpleNamespace(current=CATALOG)
    ctx = handlers.Issuing(live, keys, signer)  # type: ignore[arg-type]
    defs = [d for d in CATALOG.definitions if d.pass_rule is not None]
    # Batches as a burst delivers them: decisions of several definitions mixed, grouped by
    # issuer as on_decisions does.
    decisions = [_decision(defs[i % len(defs)], i) for i in range(args.n)]
    settle_heap()  # as the service does once started
    now = datetime.now(UTC)
    best = float("inf")
    for _ in range(args.rounds):
        start = time.process_time()
        for at in range(0, args.n, args.batch):
            by_issuer: dict[str, list[Any]] = {}
            for dec in decisions[at:at + args.batch]:
                d = CATALOG.definition(dec.definition_id)
                by_issuer.setdefault(d.provider_id, []).append((dec, d))
            for issuer, entries in by_issuer.items():
                drafts = [handlers._achieved(ctx, issuer, d, dec, None, now)
                          for dec, d in entries]
                await handlers.issue(_Conn(), ctx, issuer, drafts, now)  # type: ignore[arg-type]
        best = min(best, (time.process_time() - start) / args.n)
    print(f"issue(): {best * 1e3:.3f} ms CPU per credential (best of {args.rounds} rounds, "
          f"n={args.n}, batch={args.batch}, {len(defs)} definitions)")


def _side_by_side(args: argparse.Namespace) -> None:
    """This checkout and `args.against`, started together and pinned to one core: whatever
    else the machine runs slows both alike, and each reports its own CPU time."""
    me = [a for a in sys.argv[1:] if a not in ("--against", str(args.against), "--cpu",
                                               str(args.cpu))]
    runs = {}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, tree in (("against", args.against.resolve()), ("this", REPO_ROOT)):
        runs[name] = subprocess.Popen(
            ["taskset", "-c", str(args.cpu), "uv", "run", "--frozen", "python",
             str(Path(__file__).resolve()), *me],
            cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {name: run.communicate()[0].strip().splitlines()[-1] for name, run in runs.items()}
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, tree in (("against", args.against), ("this", REPO_ROOT)):
        print(f"{name:8s} {tree}: {out[name]}")


if __name__ == "__main__":
    asyncio.run(main())
