"""RFC 9457 problem details for every HTTP API, and their place in each OpenAPI document.

A route declares the problems its own code raises with `responses=problems.responses(404,
409)`; a dependency declares what it adds to every route that uses it with
`@problems.declares(401)` (an authentication check); `document(app)` adds what the shared
layers can answer on any operation (400, 422, 503) and the statuses of the dependencies, so
the OpenAPI lists every answer a client can get (issue 13).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, compile_path

from microcred_shared.db import unavailable
from microcred_shared.logs import outages

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = 5
TYPE_BASE = "https://w3id.org/microcred/problems/"
REF = "#/components/schemas/Problem"
# What any operation can answer: a malformed URL, header or query (400: request validation
# and the unstorable-input middleware), a body holding a character that cannot be stored
# (422, microcred_shared.storable) and the database out of reach (503 with Retry-After).
ALWAYS = (400, 422, 503)

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "what kind of problem (a URI)"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string", "description": "what went wrong with this request"},
        "instance": {"type": "string", "description": "the path that was asked for"},
        "errors": {"type": "array", "description": "one entry per invalid input",
                   "items": {"type": "object", "properties": {
                       "pointer": {"type": "string", "description": "RFC 6901 pointer"},
                       "detail": {"type": "string"}}}},
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "required": True, "schema": {"type": "integer", "minimum": 0}}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "the scheme to authenticate with",
                               "schema": {"type": "string"}}},
    405: {"Allow": {"description": "the methods the resource has", "required": True,
                    "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
_DESCRIPTIONS = {
    400: "Malformed request: a path, query or header value that is invalid or holds a "
         "character that cannot be stored, or a body that does not parse",
    401: "No valid credential for this operation",
    403: "The credential is valid but may not do this",
    404: "Nothing by that identifier (or nothing this caller may see)",
    409: "Conflicts with the resource's current state",
    410: "Gone: expired, used or revoked",
    422: "Well-formed but refused: the body breaks a rule, or holds a character that "
         "cannot be stored",
    429: "Too many requests: retry after Retry-After seconds",
    502: "A service this one depends on failed",
    503: "The database cannot be reached just now: retry after Retry-After seconds",
}
F = TypeVar("F", bound=Callable[..., Any])


def response(status: int, *also: str) -> dict[str, Any]:
    """The OpenAPI response object of a problem; `also` adds other media types the same
    answer can come in (a page's text/html), with no schema."""
    out: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM: {"schema": {"$ref": REF}}, **{m: {} for m in also}}}
    if status in _HEADERS:
        out["headers"] = _HEADERS[status]
    return out


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the problems its own code can answer."""
    return {status: response(status) for status in statuses}


def media(status: int, *media_types: str, description: str = "") -> dict[int | str, Any]:
    """A `responses=` entry for an answer served in other media types than JSON (a page,
    an image, JSON-LD): the OpenAPI lists each, so clients know what they get."""
    return {status: {"description": description or HTTPStatus(status).phrase,
                     "content": {m: {} for m in media_types}}}


def declares(*statuses: int) -> Callable[[F], F]:
    """Mark a FastAPI dependency with the problems it can answer (an authentication check:
    401): every route that depends on it, however indirectly, documents them."""
    def mark(func: F) -> F:
        func.__dict__.setdefault("problem_statuses", set()).update(statuses)
        return func
    return mark


def _declared(dependant: Dependant) -> Iterator[int]:
    yield from getattr(dependant.call, "problem_statuses", ())
    for sub in dependant.dependencies:
        yield from _declared(sub)


def document(app: FastAPI) -> None:
    """Make `app.openapi()` list every problem: those the routes declare, those their
    dependencies declare and those of the shared layers (ALWAYS), in one Problem schema
    served as application/problem+json; FastAPI's own 422 (a validation error answered as
    400 here, see `install`) is replaced."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                          openapi_version=app.openapi_version, description=app.description)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for _, path, methods, route in _routes(app):
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            statuses = {*ALWAYS, *_declared(route.dependant)}
            for method in methods:
                operation = doc["paths"].get(path, {}).get(method.lower())
                if operation is None:
                    continue
                answers = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(answers.get("422", "")):
                    del answers["422"]
                for status in sorted(statuses):
                    answers.setdefault(str(status), response(status))
                operation["responses"] = dict(sorted(answers.items()))
        for unused in ("HTTPValidationError", "ValidationError"):
            if unused not in str(doc["paths"]):
                schemas.pop(unused, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _routes(app: Any) -> list[tuple[re.Pattern[str], str, set[str], BaseRoute]]:
    """(path regex, path, methods, route) of every route, included routers' too."""
    table = getattr(app.state, "problem_routes", None)
    if table is None:
        table = []
        for context in iter_route_contexts(app.routes):
            path = context.path_format
            if path is None:
                continue
            regex, _, _ = compile_path(path)
            table.append((regex, path, set(getattr(context.original_route, "methods", None)
                                           or ()), context.original_route))
        app.state.problem_routes = table
    return table


def allowed_methods(request: Request) -> str:
    """Every method of every route at the request's path (Starlette's own 405 names only
    those of the first route that matched the path)."""
    path = request.scope.get("path", "")
    return ", ".join(sorted({m for regex, _, methods, _ in _routes(request.app)
                             if regex.match(path) for m in methods}))


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, *, kind: str = "invalid-request",
                 errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.kind = status, title, detail, kind
        self.errors = errors or []
        self.headers = headers


def problem_response(request: Request, status: int, title: str, detail: str, kind: str,
                     errors: list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_BASE + kind, "title": title, "status": status,
                            "detail": detail, "instance": request.url.path}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, exc.kind,
                                exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"pointer": "/" + "/".join(str(p) for p in e["loc"][1:]), "detail": e["msg"]}
                  for e in exc.errors()]
        return problem_response(request, 400, "Invalid request body",
                                f"{len(errors)} problem(s) in the request", "invalid-request",
                                errors)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not unavailable(exc):
            raise exc  # a bug, not an outage: the server error it is
        outages.down("database", exc)
        return problem_response(
            request, 503, "Service unavailable",
            "the service cannot reach its database just now and did not complete this "
            "request: retry after the number of seconds in Retry-After", "unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    # asyncpg's own errors: from statements sent on the driver's connection without
    # SQLAlchemy around them (HTTP ingest's flush): a lost connection is a 503 there too.
    for kind in (DBAPIError, PoolTimeout, OSError, asyncpg.PostgresError,
                 asyncpg.InterfaceError, asyncpg.InternalClientError):
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem_response(request, exc.status_code, str(exc.detail), str(exc.detail),
                                "http-" + str(exc.status_code), headers=headers)
