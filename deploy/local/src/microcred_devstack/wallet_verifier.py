"""The wallets' verifier beside ours, for `demo`: `@digitalcredentials/verifier-core` (what
the Learner Credential Wallet and VerifierPlus run), unmodified, from tests/interop, through
its driver script (tests/interop/verifier_core.mjs), with this stack's trust list passed in
as the wallets pass their registries and the stack's CA trusted (NODE_EXTRA_CA_CERTS).

verifier-core verifies eddsa-rdfc-2022 only: an eddsa-jcs-2022 credential is shown as not
checked by it rather than run into a certain "invalid signature".
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from .config import REPO_ROOT

INTEROP = REPO_ROOT / "tests" / "interop"
PACKAGE = INTEROP / "node_modules" / "@digitalcredentials" / "verifier-core"
# The OB 3.0 JSON Schema verifier-core guesses for an OpenBadgeCredential lives on 1EdTech's
# site; the driver answers it from our vendored copy, as the tests do.
OB_SCHEMA_URL = ("https://purl.imsglobal.org/spec/ob/v3p0/schema/json/"
                 "ob_v3p0_achievementcredential_schema.json")
OB_SCHEMA = REPO_ROOT / "shared/src/microcred_shared/vc/schema/achievementcredential.json"
RDFC = "eddsa-rdfc-2022"


@dataclass(frozen=True)
class Row:
    learner: str
    credential: str
    cryptosuite: str
    ours: str
    theirs: str


def unavailable() -> str | None:
    """Why verifier-core cannot run here, or None."""
    if shutil.which("node") is None:
        return "verifier-core not run: Node.js is not installed"
    if not PACKAGE.is_dir():
        return ("verifier-core not run: its npm packages are missing "
                "(`make install` installs tests/interop)")
    return None


def run(credentials: list[dict[str, Any]], *, ca_file: str,
        registries: list[dict[str, Any]], timeout: float = 180) -> list[dict[str, Any]]:
    """verifier-core's own result for each credential, in order."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listed:
        json.dump(registries, listed)
        listed.flush()
        done = subprocess.run(
            ["node", "verifier_core.mjs", "--schema", f"{OB_SCHEMA_URL}={OB_SCHEMA}",
             "--registries", listed.name],
            cwd=INTEROP, capture_output=True, text=True, timeout=timeout,
            input="".join(json.dumps(c) + "\n" for c in credentials),
            env={"PATH": str(Path(shutil.which("node") or "node").parent),
                 "NODE_EXTRA_CA_CERTS": ca_file})
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-500:] or "verifier-core failed")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# verifier-core's step ids, and what a person reads when the step failed.
FAILED = {"valid_signature": "invalid signature", "revocation_status": "revoked",
          "suspension_status": "suspended", "expiration": "expired",
          "registered_issuer": "issuer not registered"}


def summary(result: dict[str, Any]) -> str:
    """verifier-core's verdict in a few words: `valid · registered issuer`, `revoked`,
    `invalid (invalid_signature)`, … with a schema warning when its schema check failed."""
    errors = [e.get("name", "error") for e in result.get("errors", [])]
    if errors:
        return f"[red]invalid[/] ({', '.join(errors)})"
    steps = {s["id"]: s for s in result.get("log", [])}
    failed = [FAILED.get(k, k) for k, s in steps.items() if s.get("valid") is False]
    broken = [k for k, s in steps.items() if "error" in s]
    words = [f"[red]{w}[/]" for w in failed if w != FAILED["registered_issuer"]]
    words += [f"[yellow]{k}: unknown[/]" for k in broken]
    verdict = " · ".join(words) if words else "[green]valid[/]"
    if "registered_issuer" in steps:
        verdict += (" · registered issuer" if steps["registered_issuer"].get("valid")
                    else " · [yellow]issuer not registered[/]")
    # Its schema check is information, not a step: shown as what the schema objected to.
    warnings = sorted({f"{e.get('instancePath') or '/'} {e.get('message', '')}".strip()
                       for info in result.get("additionalInformation", [])
                       if info.get("id") == "schema_check"
                       and isinstance(info.get("results"), list)
                       for r in info["results"] for e in r.get("result", {}).get("errors", [])})
    return verdict + (f" · [yellow]OB schema: {'; '.join(warnings)}[/]" if warnings else "")


def side_by_side(rows: list[Row], note: str | None = None) -> Table:
    """One line per credential: our verifier's verdict and verifier-core's."""
    table = Table(title="Verified by us and by the wallets' verifier (verifier-core)",
                  caption=note)
    for name in ("learner", "credential", "proof", "our verifier", "verifier-core"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(r.learner, r.credential, r.cryptosuite, r.ours, r.theirs)
    return table


def verdicts(credentials: list[dict[str, Any]], *, ca_file: str,
             registries: list[dict[str, Any]]) -> tuple[list[str], str | None]:
    """verifier-core's summary per credential, and a note for the table (why some or all
    were not run)."""
    reason = unavailable()
    if reason:
        return ["not run"] * len(credentials), reason
    rdfc = [i for i, c in enumerate(credentials) if suite_of(c) == RDFC]
    out = [f"not checked: verifier-core has no {suite_of(c)}" for c in credentials]
    try:
        results = run([credentials[i] for i in rdfc], ca_file=ca_file, registries=registries)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return ["not run"] * len(credentials), f"verifier-core not run: {exc}"
    for i, result in zip(rdfc, results, strict=True):
        out[i] = summary(result)
    return out, None


def suite_of(credential: dict[str, Any]) -> str:
    proofs = credential.get("proof") or [{}]
    proof = proofs[0] if isinstance(proofs, list) else proofs
    return str(proof.get("cryptosuite") or proof.get("type") or "?")
