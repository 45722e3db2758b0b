"""did:web identifiers of our issuers (W3C CCG did:web method).

`did:web:<host%3Aport>[:<path>…]` names the DID document at
`https://<host:port>/<path…>/did.json` (no path: `/.well-known/did.json`). Our issuers live
under the registry's public origin, `did:web:<host%3Aport>:issuers:<provider>`, whose
document is `{PUBLIC_BASE_URL}/issuers/<provider>/did.json`. A base URL with a path
(`https://example.org/registry`) puts that path into the DID too. did:web is https only:
a base URL in http has no did:web (`ValueError`).
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from .errors import VcError

PREFIX = "did:web:"


class DidWebError(VcError):
    pass


def did_web(base_url: str, *segments: str) -> str:
    """The did:web for `{base_url}/{segments…}` (whose document is `…/did.json`)."""
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname:
        raise DidWebError(f"did:web needs an https origin, not {base_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise DidWebError(f"a did:web base URL has no query, fragment or user: {base_url!r}")
    path = [p for p in parts.path.split("/") if p] + list(segments)
    if any(not seg or "/" in seg for seg in segments):
        raise DidWebError(f"bad did:web path segment in {segments!r}")
    return PREFIX + ":".join([quote(parts.netloc, safe=""), *(quote(p, safe="") for p in path)])


def document_url(did: str) -> str:
    """The https URL of the DID document of `did` (a DID URL's fragment is dropped)."""
    bare = did.split("#", 1)[0].split("?", 1)[0]
    if not bare.startswith(PREFIX) or len(bare) == len(PREFIX):
        raise DidWebError(f"not a did:web: {did!r}")
    host, *path = bare[len(PREFIX):].split(":")
    netloc = unquote(host)
    if not netloc or any(c in netloc for c in "/?#@") or any(not p for p in path):
        raise DidWebError(f"not a well-formed did:web: {did!r}")
    decoded = [unquote(p) for p in path]
    if any(p in (".", "..") or "/" in p for p in decoded):
        raise DidWebError(f"did:web path segments may not be '.', '..' or hold '/': {did!r}")
    tail = "/".join(quote(p, safe="") for p in decoded) if decoded else ".well-known"
    return f"https://{netloc}/{tail}/did.json"
