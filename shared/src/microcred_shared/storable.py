"""Refuse HTTP input that PostgreSQL cannot store, before any route sees it (issue 13).

PostgreSQL `text` cannot hold U+0000, and a lone UTF-16 surrogate (which a JSON `\\ud800`
escape yields) cannot even be encoded for the wire: either one reaching a query was a 500.
Checking every route's inputs one by one misses some (fuzzing found 55 such 500s), so this
plain ASGI middleware, installed by `ServiceRuntime.app` on every service, checks what any
route can read as data:

- the path and the query string, percent-decoded as the router decodes them;
- every header value, and cookie values as the cookie parser unquotes them;
- the body: a NUL byte anywhere (no endpoint takes binary bodies); a JSON body's strings
  and keys (whatever its declared content type: some routes parse JSON regardless), and a
  body that is not JSON as a form (`%00` decodes to NUL).

A refusal is an RFC 9457 problem: 400 for the URL or a header (the request is malformed),
422 for a body that is well-formed but holds such a character, naming where it is. The
scan is one regular expression over the raw bytes; only a body that matches is parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM = "application/problem+json"
TYPE = "https://w3id.org/microcred/problems/unstorable-character"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What in raw bytes can decode to an unstorable character: a NUL byte, %00, or a JSON
# escape of NUL or of a surrogate (a paired one is fine: the JSON walk tells them apart).
_SUSPECT = re.compile(rb"\x00|%00|\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})", re.IGNORECASE)


def unstorable(text: str) -> str | None:
    """"U+XXXX" of the first character PostgreSQL text cannot store, or None."""
    found = _UNSTORABLE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def _pointer(path: list[str | int]) -> str:
    """RFC 6901, with an unstorable character of a key written as \\uXXXX."""
    return "".join("/" + _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(p))
                   .replace("~", "~0").replace("/", "~1") for p in path)


def _in_json(value: Any, path: list[str | int]) -> tuple[str, str] | None:
    """(JSON pointer, U+XXXX) of the first unstorable character in a parsed document."""
    if isinstance(value, str):
        code = unstorable(value)
        return None if code is None else (_pointer(path), code)
    if isinstance(value, dict):
        for key, item in value.items():
            if (code := unstorable(key)) is not None:
                return _pointer([*path, key]) + " (a key)", code
            if (found := _in_json(item, [*path, key])) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _in_json(item, [*path, index])) is not None:
                return found
    return None


def _in_pairs(pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    for name, value in pairs:
        for text in (name, value):
            if (code := unstorable(text)) is not None:
                return name, code
    return None


def _in_body(body: bytes) -> tuple[str, str] | None:
    """(where, U+XXXX) of an unstorable character in a request body, or None."""
    if not _SUSPECT.search(body):
        return None
    if b"\x00" in body:
        return "the body (a NUL byte)", "U+0000"
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None  # not JSON: judged as a form below; the route says what else is wrong
    else:
        found = _in_json(document, [])
        return None if found is None else (f"the body at {found[0] or '/'}", found[1])
    text = body.decode("utf-8", "replace")
    found = _in_pairs(parse_qsl(text, keep_blank_values=True))
    return None if found is None else (f"the form field {found[0]!r}", found[1])


def _in_url_and_headers(scope: Scope) -> tuple[str, str] | None:
    if (code := unstorable(scope.get("path", ""))) is not None:
        return "the URL path", code
    query = scope.get("query_string", b"").decode("latin-1")
    if query and (found := _in_pairs(parse_qsl(query, keep_blank_values=True))):
        return f"the query parameter {found[0]!r}", found[1]
    for raw_name, raw_value in scope.get("headers", ()):
        # Bytes compared as bytes: a name is decoded only to say where (issue 12).
        if b"\x00" in raw_value:
            return f"the header {raw_name.decode('latin-1')!r}", "U+0000"
        if raw_name.lower() == b"cookie":
            cookies = cookie_parser(raw_value.decode("latin-1"))
            if (found := _in_pairs(list(cookies.items()))) is not None:
                return f"the cookie {found[0]!r}", found[1]
    return None


def unstorable_in_url_or_headers(scope: Scope) -> bool:
    """Whether the request's URL or headers hold what this middleware refuses."""
    return _in_url_and_headers(scope) is not None


def unstorable_in_body(body: bytes) -> bool:
    """Whether a request body holds what this middleware refuses."""
    return _in_body(body) is not None


def _refusal(scope: Scope, status: int, where: str, code: str) -> JSONResponse:
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    return JSONResponse(
        {"type": TYPE, "title": "Unstorable character", "status": status,
         "detail": f"{where} holds the character {code}, which cannot be stored: remove it",
         "instance": raw.decode("latin-1").replace("\x00", "%00")},
        status_code=status, media_type=PROBLEM)


class RefuseUnstorable:
    """Plain ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (found := _in_url_and_headers(scope)) is not None:
            await _refusal(scope, 400, *found)(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if (found := _in_body(body)) is not None:
            await _refusal(scope, 422, *found)(scope, receive, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body,
                                        "more_body": False}], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` first, then what the client sends next."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
