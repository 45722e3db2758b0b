"""Offline JSON-LD document loader over the vendored contexts.

The contexts are copied from pinned npm packages (see `contexts/manifest.json` and
`tests/interop/sync_contexts.py`) plus our own extension context. Nothing is ever fetched
from the network: an unknown URL is an error, not a download, because a context fetched at
run time could change what a signature means.

Our context (ADR 22) is published by each deployment under its public origin,
`{PUBLIC_BASE_URL}/contexts/microcred/v1`, immutable, with its sha256 published; every
https URL of that shape is this one vendored document (a deployment cannot serve another:
the bytes are fixed by the digest). Credentials issued before ADR 22 name
`https://w3id.org/microcred/v1`, which stays a key of the same document.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from .errors import ContextNotFoundError

VC_V1_URL = "https://www.w3.org/2018/credentials/v1"
VC_V2_URL = "https://www.w3.org/ns/credentials/v2"
OB_V3_URL = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
STATUS_V1_URL = "https://www.w3.org/ns/credentials/status/v1"
DATA_INTEGRITY_V2_URL = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1_URL = "https://w3id.org/security/multikey/v1"
MICROCRED_V1_URL = "https://w3id.org/microcred/v1"  # credentials issued before ADR 22
MICROCRED_VOCAB = "https://w3id.org/microcred/vocab#"
MICROCRED_V1_PATH = "/contexts/microcred/v1"

_PACKAGE = resources.files(__package__) / "contexts"


@cache
def manifest() -> dict[str, dict[str, str]]:
    """url -> {"file", "sha256", "source"} for every vendored context."""
    loaded: dict[str, dict[str, str]] = json.loads((_PACKAGE / "manifest.json").read_text("utf-8"))
    return loaded


def microcred_context_url(base_url: str) -> str:
    """Where the deployment at `base_url` publishes our context (what credentials name)."""
    return base_url.rstrip("/") + MICROCRED_V1_PATH


def canonical_url(url: str) -> str:
    """The manifest key of `url`: a deployment's copy of our context is the vendored one."""
    if url in manifest():
        return url
    parts = urlsplit(url)
    if (parts.scheme == "https" and parts.hostname and not parts.query and not parts.fragment
            and not parts.username and parts.path.endswith(MICROCRED_V1_PATH)):
        return MICROCRED_V1_URL
    return url


def is_known(url: str) -> bool:
    return canonical_url(url) in manifest()


def sha256_of(url: str) -> str:
    """The published hex sha256 of the vendored document for `url`."""
    entry = manifest().get(canonical_url(url))
    if entry is None:
        raise ContextNotFoundError(f"no vendored JSON-LD context for {url!r} (offline only)")
    return entry["sha256"]


def context_file_bytes(url: str) -> bytes:
    """The vendored file for `url`, byte for byte (for hashing and serving)."""
    entry = manifest().get(canonical_url(url))
    if entry is None:
        raise ContextNotFoundError(f"no vendored JSON-LD context for {url!r} (offline only)")
    return (_PACKAGE / entry["file"]).read_bytes()


def get_context(url: str) -> Any:
    """The parsed context document for `url`. Shared and cached: do not mutate it."""
    return _parsed(canonical_url(url))


@cache
def _parsed(url: str) -> Any:
    return json.loads(context_file_bytes(url))


def known_urls() -> frozenset[str]:
    return frozenset(manifest())


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader that only serves vendored contexts."""
    return {"contextUrl": None, "documentUrl": url, "document": get_context(url)}
