"""Documents the registry does not host, fetched with strict limits: https only, public
addresses only (microcred_shared.netguard checks every connection and redirect hop), small
and quick. No table models here, so unit tests can import it (ADR 14)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from microcred_shared import netguard

MAX_BYTES = 1_000_000
MAX_REDIRECTS = 3
TOTAL_SECONDS = 10.0  # the whole exchange, redirects included
ACCEPT = "application/ld+json, application/json"


async def remote_document(url: str, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """The JSON document at `url`. A `client` given (tests) replaces the guarded one."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"refusing to fetch {url}: only https URLs are dereferenced")
    http = client or netguard.guarded_client(
        netguard.STRICT, timeout=httpx.Timeout(5.0, connect=3.0), follow_redirects=True,
        max_redirects=MAX_REDIRECTS)
    try:
        got = await netguard.fetch(http, "GET", url, max_bytes=MAX_BYTES,
                                   total_seconds=TOTAL_SECONDS, headers={"accept": ACCEPT})
    finally:
        if client is None:
            await http.aclose()
    if not 200 <= got.status_code < 300:
        raise ValueError(f"{url} answered HTTP {got.status_code}")
    return dict(json.loads(got.content))
