"""Signing and verification throughput, ours vs the reference JavaScript stack, side by side
on one core.

    uv run python bench/signing/run.py [--n 2000] [--reference-n N] [--rounds 3] [--cpu 0]
                                       [--verify-n 1000] [--peer-verify-n 100]

Signs N copies of ../shared/bench/peer-signing/sample-credential.json (each with its own
id, as the peer does) with: our eddsa-rdfc-2022 fast path, our rdfc reference path (pyld),
our eddsa-jcs-2022; then runs the peer's signbench.mjs for both suites, pinned to the same
core. The peer's folder is read-only, so it is copied to a cache folder and its
node_modules installed there once. Prints credentials/s per core, the ratio to the peer,
where our fast path spends its time, and the machine.

Verification: credentials of the test kit's example issuer (microcred_testkit.vc_examples:
an Open Badges 3.0 micro-credential with a revocation and a suspension entry), verified by
our verifier (microcred_shared.vc.verify.verify_credential: proof, issuer key, validity
window, both status entries, OB 3.0 schema) with every document served from memory (a warm
cache: no fetching), and by the peer's verifybench.mjs (@digitalbazaar/vc with
vc-bitstring-status-list's checkStatus, as tests/interop/verify.mjs runs it; needs
`make install` for tests/interop's node_modules), pinned to the same core. Ours is also
timed with its status-list caches emptied before each credential (every list's proof
checked again, as the peer does).
"""

from __future__ import annotations

import argparse
import asyncio
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

from microcred_shared.vc import contexts, keys, proofs
from microcred_shared.vc import verify as verifier
from microcred_shared.vc.fastcanon import (
    canonicalize_parts,
    canonicalize_quads,
    fast_parts,
    fast_quads,
)
from microcred_testkit.machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
PEER = REPO / ".." / "shared" / "bench" / "peer-signing"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "microcred"
ISSUER = "did:example:issuer"
VM = f"{ISSUER}#key-1"


def machine() -> str:
    model = cpu_model()
    return f"{os.cpu_count()} CPUs (nproc), {model}, Python {platform.python_version()}"


def credentials(n: int, start: int = 0) -> list[dict[str, Any]]:
    """N credentials of one definition for N learners: each its own id, subject id and
    result (the issuer and the achievement are the same, as in a real batch). Each is its
    own dict tree, as a builder makes it. Not N copies of one subject: the fast path
    remembers a nested node with an IRI id that recurs unchanged, which would then cover
    the whole subject."""
    base = json.loads((PEER / "sample-credential.json").read_text("utf-8"))
    base.pop("proof", None)
    base["issuer"] = {**base["issuer"], "id": ISSUER}
    docs = []
    for i in range(start, start + n):
        doc = json.loads(json.dumps(base))
        doc["id"] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        subject = doc["credentialSubject"]
        subject["id"] = f"did:example:learner-{i:06d}"
        subject["result"][0]["value"] = str(50 + i % 50)
        docs.append(doc)
    return docs


def rate(docs: list[dict[str, Any]], sign_one: Callable[[dict[str, Any]], Any]) -> float:
    sign_one(docs[0])  # warm-up: context processing happens once per process
    started = time.perf_counter()
    for doc in docs:
        sign_one(doc)
    return len(docs) / (time.perf_counter() - started)


def show(label: str, per_s: float) -> None:
    print(f"  {label:36s} {1000 / per_s:8.3f} ms/cred  {per_s:8.0f} creds/s")


def breakdown(docs: list[dict[str, Any]], repeat: int = 2000) -> None:
    """Where one fast-path signature spends its time (each step timed alone). The walk and
    RDFC-1.0 are timed over `docs`, each seen once (new learners of a definition signed
    before: the achievement and the issuer come from remembered fragments)."""
    key = keys.private_key_from_seed(bytes(32))
    doc = docs[0]
    config = {"@context": doc["@context"], "type": "DataIntegrityProof",
              "cryptosuite": proofs.RDFC, "created": "2026-01-01T00:00:00Z",
              "verificationMethod": VM, "proofPurpose": "assertionMethod"}
    print("  fast-path breakdown:")
    started = time.perf_counter()
    parts = [fast_parts(d) for d in docs]
    print(f"    {'JSON-LD walk, fragments reused':34s} "
          f"{(time.perf_counter() - started) / len(docs) * 1000:8.4f} ms")
    started = time.perf_counter()
    for quads, fragments in parts:
        canonicalize_parts(quads, fragments)
    print(f"    {'RDFC-1.0 on those quads':34s} "
          f"{(time.perf_counter() - started) / len(docs) * 1000:8.4f} ms")
    steps: dict[str, Callable[[], Any]] = {
        "proof options (walk + RDFC)": lambda: canonicalize_quads(fast_quads(config)),
        "Ed25519 sign": lambda: key.sign(bytes(64)),
        "base58 of the signature": lambda: keys.multibase_encode(bytes(64)),
    }
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


def verification_world(n: int) -> tuple[Any, list[dict[str, Any]]]:
    from microcred_testkit.vc_examples import ExampleIssuer

    issuer = ExampleIssuer()
    issuer.lists["revocation"][0] |= 0x40  # index 1 revoked: the lists are not all zeros
    issuer.publish_lists()
    # Indices from 2: every credential verifies (both bits clear).
    return issuer, [issuer.credential(i + 2) for i in range(n)]


def verify_rate(issuer: Any, docs: list[dict[str, Any]], *, cold: bool) -> float:
    async def run() -> float:
        async def one(doc: dict[str, Any]) -> None:
            if cold:
                verifier._LIST_PROOFS.clear()
                verifier._bits.cache_clear()
                verifier._public_key.cache_clear()
            result = await verifier.verify_credential(doc, resolve_document=issuer.resolve)
            if not result.verified:
                raise SystemExit(f"our verifier refused a good credential: {result.problems()}")
        await one(docs[0])  # warm-up: contexts, schema, the lists' cache
        started = time.perf_counter()
        for doc in docs:
            await one(doc)
        return len(docs) / (time.perf_counter() - started)
    return asyncio.run(run())


def peer_verify_dir(issuer: Any, docs: list[dict[str, Any]]) -> Path:
    """A folder with verifybench.mjs, tests/interop's loader and node_modules (linked), the
    issuer's documents and the credentials."""
    interop = REPO / "tests" / "interop"
    if not (interop / "node_modules" / "@digitalbazaar" / "vc-bitstring-status-list").is_dir():
        raise SystemExit("the peer verifier needs tests/interop's node_modules: make install")
    target = CACHE / "peer-verify"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(__file__).parent / "verifybench.mjs", target / "verifybench.mjs")
    shutil.copy2(interop / "loader.mjs", target / "loader.mjs")
    link = target / "node_modules"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(interop / "node_modules", target_is_directory=True)
    (target / "documents.json").write_text(json.dumps({
        **issuer.documents,
        contexts.MICROCRED_V1_URL: contexts.get_context(contexts.MICROCRED_V1_URL)}))
    (target / "credentials.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return target


def peer_verify_rate(target: Path, cpu: int | None) -> float:
    argv = ["node", "verifybench.mjs", "documents.json", "credentials.jsonl"]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    done = subprocess.run(argv, cwd=target, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the peer verifier failed: {done.stderr[-2000:]}")
    return 1000 / float(json.loads(done.stdout.strip().splitlines()[-1])["per_cred_ms"])


def verification(args: argparse.Namespace, cpu: int | None) -> None:
    issuer, docs = verification_world(args.verify_n)
    peer = peer_verify_dir(issuer, docs[: args.peer_verify_n])
    label_ours = "ours verify_credential (warm lists)"
    label_cold = "ours, lists re-verified each time"
    label_peer = "peer @digitalbazaar/vc + checkStatus"
    best: dict[str, float] = {}
    for round_no in range(args.rounds):
        best[label_ours] = max(best.get(label_ours, 0.0), verify_rate(issuer, docs, cold=False))
        best[label_cold] = max(best.get(label_cold, 0.0),
                               verify_rate(issuer, docs[: max(1, args.verify_n // 4)],
                                           cold=True))
        best[label_peer] = max(best.get(label_peer, 0.0), peer_verify_rate(peer, cpu))
        print(f"  verification round {round_no + 1}/{args.rounds} done")
    print(f"verification, eddsa-rdfc-2022 + both status entries, best of {args.rounds} rounds, "
          "credentials/s on one core:")
    for label, per_s in best.items():
        show(label, per_s)
    print("ratios (ours / peer, same credentials, same core):")
    for label in (label_ours, label_cold):
        print(f"  {label:36s} {best[label] / best[label_peer]:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="credentials per measurement")
    parser.add_argument("--reference-n", type=int, default=None,
                        help="credentials for the slow pyld reference path (default: n)")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: no pinning)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best kept")
    parser.add_argument("--verify-n", type=int, default=1000,
                        help="credentials verified by ours per round")
    parser.add_argument("--peer-verify-n", type=int, default=100,
                        help="credentials verified by the peer per round (it is slow)")
    parser.add_argument("--only", choices=("signing", "verification"), default=None)
    args = parser.parse_args()
    cpu = None if args.cpu < 0 else args.cpu
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    print(f"machine: {machine()}; pinned to core {cpu}; n={args.n}; "
          f"load average {os.getloadavg()[0]:.2f} (1 min)")
    if args.only != "signing":
        verification(args, cpu)
    if args.only == "verification":
        return

    docs = credentials(args.n)
    key = keys.private_key_from_seed(bytes(range(32)))
    created = datetime(2026, 1, 1, tzinfo=UTC)
    fast = proofs.sign(docs[0], key, VM, created=created)
    slow = proofs.sign(docs[0], key, VM, created=created, fast=False)
    assert fast == slow, "fast path output differs from the reference path"
    print("  fast and reference proofs are byte-identical on the sample: yes")

    # Each round signs new learners' credentials (a learner's subject is seen once, as in
    # issuance; seen again it would be remembered like the achievement).
    rounds = [credentials(args.n, start=(r + 1) * args.n) for r in range(args.rounds)]
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
            if label == "ours eddsa-rdfc-2022 (fast path)":
                subset = rounds[round_no]
            best[label] = max(best.get(label, 0.0), rate(subset, sign_one))
        for suite in (proofs.RDFC, proofs.JCS):
            label = f"peer {suite} (@digitalbazaar/vc)"
            best[label] = max(best.get(label, 0.0), peer_rate(suite, args.n, cpu))
        print(f"  round {round_no + 1}/{args.rounds} done")
    print(f"best of {args.rounds} rounds, credentials/s on one core:")
    for label, per_s in best.items():
        show(label, per_s)
    breakdown(credentials(args.n, start=(args.rounds + 1) * args.n))
    print("ratios (ours / peer, same suite, same core):")
    for label, per_s in best.items():
        if label.startswith("ours"):
            suite = proofs.JCS if "jcs" in label else proofs.RDFC
            peer = best[f"peer {suite} (@digitalbazaar/vc)"]
            print(f"  {label:36s} {per_s / peer:6.1f}x")


if __name__ == "__main__":
    main()
