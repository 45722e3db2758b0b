"""RFC 9457 problem details for every HTTP API."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from microcred_shared.db import unavailable
from microcred_shared.logs import outages

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = 5
TYPE_BASE = "https://w3id.org/microcred/problems/"


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

    for kind in (DBAPIError, PoolTimeout, OSError):
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, str(exc.detail), str(exc.detail),
                                "http-" + str(exc.status_code),
                                headers=getattr(exc, "headers", None))
