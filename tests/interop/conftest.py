"""Interop tests run the reference JavaScript stack from tests/interop/node_modules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from microcred_shared.vc import contexts
from microcred_testkit import vc_examples as examples

HERE = Path(__file__).resolve().parent


def node_available() -> Path:
    """Fail (never skip) with the setup step when the JS stack is missing."""
    if shutil.which("node") is None:
        pytest.fail("interop tests need Node.js 20+ on PATH")
    modules = HERE / "node_modules"
    if not (modules / "@digitalbazaar" / "vc").is_dir():
        pytest.fail(f"{modules} is missing: run `npm ci --prefix tests/interop` first")
    return modules


def run_node(script: str, lines: list[dict[str, Any]], *args: str,
             documents: dict[str, Any] | None = None, tmp_path: Path) -> list[dict[str, Any]]:
    node_available()
    argv = ["node", script, *args]
    if documents is not None:
        docs = tmp_path / "documents.json"
        docs.write_text(json.dumps(documents), "utf-8")
        argv += ["--documents", str(docs)]
    done = subprocess.run(argv, cwd=HERE, input="".join(json.dumps(x) + "\n" for x in lines),
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"{script} failed: {done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def served(issuer: examples.ExampleIssuer) -> dict[str, Any]:
    """What a verifier can fetch: the issuer's documents plus our own context (not on npm)."""
    return {**issuer.documents,
            contexts.MICROCRED_V1_URL: contexts.get_context(contexts.MICROCRED_V1_URL)}
