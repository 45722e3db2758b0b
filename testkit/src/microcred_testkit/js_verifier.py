"""The reference JavaScript verifiers: `@digitalbazaar/vc` (tests/interop/verify.mjs), run
offline on credentials with the documents a stranger's verifier would fetch, and the
Learner Credential Wallet's verifier-core (tests/interop/verifier_core.mjs), run against the
running backbone with its trust list."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[3]
INTEROP = REPO / "tests" / "interop"
SCHEMA = REPO / "shared/src/microcred_shared/vc/schema/achievementcredential.json"
OB_SCHEMA_URL = ("https://purl.imsglobal.org/spec/ob/v3p0/schema/json/"
                 "ob_v3p0_achievementcredential_schema.json")  # served from SCHEMA (offline)


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


def known_registries(bb: Any) -> list[dict[str, Any]]:
    """Our trust list as a wallet names it in its `knownDIDRegistries` (the DCC
    known-registries shape the Learner Credential Wallet loads), read from the registry of
    the running backbone `bb`."""
    return list(json.loads(httpx.get(
        f"{bb.public_base_url}/trust/known-registries.json",
        verify=ssl.create_default_context(cafile=str(bb.ca_file))).text))


def verifier_core(bb: Any, credentials: list[dict[str, Any]], *, unreachable: str | None = None,
                  registries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """verifier-core's own verdict for each credential, in order, with our trust list passed
    in as the wallets pass their registries (or `registries`); URLs under `unreachable` fail
    as a dead network would. Fails the test when Node or the packages are missing (never
    skips)."""
    if shutil.which("node") is None or not (
            INTEROP / "node_modules/@digitalcredentials/verifier-core").is_dir():
        raise AssertionError("needs Node.js and `npm ci --prefix tests/interop` "
                             "(make install does it)")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listed:
        json.dump(known_registries(bb) if registries is None else registries, listed)
        listed.flush()
        argv = ["node", "verifier_core.mjs", "--schema", f"{OB_SCHEMA_URL}={SCHEMA}",
                "--registries", listed.name]
        if unreachable:
            argv += ["--unreachable", unreachable]
        done = subprocess.run(argv, cwd=INTEROP, capture_output=True, text=True, timeout=120,
                              input="".join(json.dumps(c) + "\n" for c in credentials),
                              env={"PATH": str(Path(str(shutil.which("node"))).parent),
                                   "NODE_EXTRA_CA_CERTS": str(bb.ca_file)})
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def checks(verdict: dict[str, Any]) -> dict[str, bool | None]:
    """verifier-core's checks by id (`valid_signature`, `revocation_status`, ...): passed,
    failed, or None where it could not tell."""
    return {step["id"]: step.get("valid") for step in verdict.get("log", [])}
