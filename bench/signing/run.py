"""Signing throughput, ours vs the reference JavaScript stack, side by side on one core.

    uv run python bench/signing/run.py [--n 2000] [--reference-n N] [--rounds 3] [--cpu 0]

Signs N copies of ../shared/bench/peer-signing/sample-credential.json (each with its own
id, as the peer does) with: our eddsa-rdfc-2022 fast path, our rdfc reference path (pyld),
our eddsa-jcs-2022; then runs the peer's signbench.mjs for both suites, pinned to the same
core. The peer's folder is read-only, so it is copied to a cache folder and its
node_modules installed there once. Prints credentials/s per core, the ratio to the peer,
where our fast path spends its time, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from microcred_shared.vc import keys, proofs
from microcred_shared.vc.fastcanon import canonicalize_quads, fast_quads

REPO = Path(__file__).resolve().parents[2]
PEER = REPO / ".." / "shared" / "bench" / "peer-signing"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "microcred"
ISSUER = "did:example:issuer"
VM = f"{ISSUER}#key-1"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc), {model}, Python {platform.python_version()}"


def credentials(n: int) -> list[dict[str, Any]]:
    base = json.loads((PEER / "sample-credential.json").read_text("utf-8"))
    base.pop("proof", None)
    base["issuer"] = {**base["issuer"], "id": ISSUER}
    return [{**base, "id": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"} for i in range(n)]


def rate(docs: list[dict[str, Any]], sign_one: Callable[[dict[str, Any]], Any]) -> float:
    sign_one(docs[0])  # warm-up: context processing happens once per process
    started = time.perf_counter()
    for doc in docs:
        sign_one(doc)
    return len(docs) / (time.perf_counter() - started)


def show(label: str, per_s: float) -> None:
    print(f"  {label:36s} {1000 / per_s:8.3f} ms/cred  {per_s:8.0f} creds/s")


def breakdown(doc: dict[str, Any], repeat: int = 2000) -> None:
    """Where one fast-path signature spends its time (each step timed alone)."""
    key = keys.private_key_from_seed(bytes(32))
    config = {"@context": doc["@context"], "type": "DataIntegrityProof",
              "cryptosuite": proofs.RDFC, "created": "2026-01-01T00:00:00Z",
              "verificationMethod": VM, "proofPurpose": "assertionMethod"}
    quads = fast_quads(doc)
    steps: dict[str, Callable[[], Any]] = {
        "JSON-LD walk to quads (document)": lambda: fast_quads(doc),
        "RDFC-1.0 on those quads": lambda: canonicalize_quads(quads),
        "proof options (walk + RDFC)": lambda: canonicalize_quads(fast_quads(config)),
        "Ed25519 sign": lambda: key.sign(bytes(64)),
        "base58 of the signature": lambda: keys.multibase_encode(bytes(64)),
    }
    print("  fast-path breakdown:")
    for label, step in steps.items():
        step()
        started = time.perf_counter()
        for _ in range(repeat):
            step()
        print(f"    {label:34s} {(time.perf_counter() - started) / repeat * 1000:8.4f} ms")


def peer_dir() -> Path:
    """A writable copy of the peer bench with its node_modules (installed once)."""
    target = CACHE / "peer-signing"
    if not (target / "node_modules" / "@digitalbazaar" / "vc").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(PEER, target)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=target, check=True,
                       stdout=subprocess.DEVNULL)
    for name in ("signbench.mjs", "sample-credential.json"):  # keep the scripts current
        shutil.copy2(PEER / name, target / name)
    return target


def peer_rate(suite: str, n: int, cpu: int | None) -> float:
    target = peer_dir()
    argv = ["node", "signbench.mjs", "sample-credential.json", str(n), suite]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    out = subprocess.run(argv, cwd=target, check=True, capture_output=True, text=True).stdout
    return 1000 / float(json.loads(out.strip().splitlines()[-1])["per_cred_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="credentials per measurement")
    parser.add_argument("--reference-n", type=int, default=None,
                        help="credentials for the slow pyld reference path (default: n)")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: no pinning)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best kept")
    args = parser.parse_args()
    cpu = None if args.cpu < 0 else args.cpu
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    print(f"machine: {machine()}; pinned to core {cpu}; n={args.n}")

    docs = credentials(args.n)
    key = keys.private_key_from_seed(bytes(range(32)))
    created = datetime(2026, 1, 1, tzinfo=UTC)
    fast = proofs.sign(docs[0], key, VM, created=created)
    slow = proofs.sign(docs[0], key, VM, created=created, fast=False)
    assert fast == slow, "fast path output differs from the reference path"
    print("  fast and reference proofs are byte-identical on the sample: yes")

    variants: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], Any]]] = {
        "ours eddsa-rdfc-2022 (fast path)": (docs, lambda d: proofs.sign(d, key, VM)),
        "ours eddsa-rdfc-2022 (reference)": (
            docs[: args.reference_n or args.n], lambda d: proofs.sign(d, key, VM, fast=False)),
        "ours eddsa-jcs-2022": (docs, lambda d: proofs.sign(d, key, VM, cryptosuite=proofs.JCS)),
    }
    # Shared 2-core machines are noisy: alternate ours and the peer for a few rounds and
    # keep each one's best round.
    best: dict[str, float] = {}
    for round_no in range(args.rounds):
        for label, (subset, sign_one) in variants.items():
            best[label] = max(best.get(label, 0.0), rate(subset, sign_one))
        for suite in (proofs.RDFC, proofs.JCS):
            label = f"peer {suite} (@digitalbazaar/vc)"
            best[label] = max(best.get(label, 0.0), peer_rate(suite, args.n, cpu))
        print(f"  round {round_no + 1}/{args.rounds} done")
    print(f"best of {args.rounds} rounds, credentials/s on one core:")
    for label, per_s in best.items():
        show(label, per_s)
    breakdown(docs[0])
    print("ratios (ours / peer, same suite, same core):")
    for label, per_s in best.items():
        if label.startswith("ours"):
            suite = proofs.JCS if "jcs" in label else proofs.RDFC
            peer = best[f"peer {suite} (@digitalbazaar/vc)"]
            print(f"  {label:36s} {per_s / peer:6.1f}x")


if __name__ == "__main__":
    main()
