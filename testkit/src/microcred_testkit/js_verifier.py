"""The reference JavaScript verifier (tests/interop/verify.mjs: `@digitalbazaar/vc`), run
offline on credentials with the documents a stranger's verifier would fetch."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

INTEROP = Path(__file__).resolve().parents[3] / "tests" / "interop"


def js_verify(credentials: list[dict[str, Any]], documents: dict[str, Any],
              tmp_path: Path) -> list[dict[str, Any]]:
    """One verdict per credential, in order; fails the test when Node or the packages are
    missing (never skips)."""
    if shutil.which("node") is None or not (INTEROP / "node_modules/@digitalbazaar/vc").is_dir():
        raise AssertionError("needs Node.js and `npm ci --prefix tests/interop` "
                             "(make install does it)")
    docs = tmp_path / "documents.json"
    docs.write_text(json.dumps(documents))
    done = subprocess.run(["node", "verify.mjs", "--documents", str(docs)], cwd=INTEROP,
                          input="".join(json.dumps(c) + "\n" for c in credentials),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
