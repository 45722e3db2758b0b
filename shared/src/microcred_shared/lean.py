"""A FastAPI route that serves its common request without FastAPI's generic machinery.

For a route taking one JSON body model, the `Request` and dependencies that need only the
request (who is calling, the runtime), FastAPI's request handler does, per request: parse
the content type with `email.message`, `json.loads` the body and validate the dict in
pydantic's python mode, then solve the dependency tree generically (a `Response` object,
caches, the query string, the headers and the cookies parsed for every dependant). For
HTTP ingest that was about a third of the CPU of a request (issue 12, item 2).

`LeanRoute` keeps the route exactly as declared (OpenAPI, dependencies, problems) and
serves the plain case itself: a body declared `application/json` that the model accepts,
parsed in one step from the bytes (`model_validate_json`), the dependencies called in
declaration order, once each, then the endpoint. Anything else — no or another content
type, an empty or invalid body, dependency overrides (tests), FastAPI's own telemetry
active — goes to FastAPI's handler unchanged, with the same request (its body already
read), so every refusal is the answer it was, in FastAPI's order: the 400 of a body that
is not JSON, the 401 of a dependency, the 400 of a body the model refuses.

A strict model parses alike from JSON and from parsed JSON (the event contract's
models are strict per field for that reason, ADR 23); a route whose model does not must
not use this class.
"""

from __future__ import annotations

import importlib
import inspect
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microcred_shared.storable import unstorable_in_body, unstorable_in_url_or_headers

try:  # FastAPI's own OpenTelemetry (0.16x): when it records, FastAPI serves the request
    _telemetry: Callable[[], Any] | None = importlib.import_module(
        "fastapi.telemetry").get_telemetry_data
except (ImportError, AttributeError):  # older FastAPI
    _telemetry = None

F = TypeVar("F", bound=Callable[..., Any])
_JSON = b"application/json"


@dataclass(frozen=True)
class _Plan:
    endpoint: Callable[..., Awaitable[Any]]
    body_name: str
    model: type[BaseModel]
    request_name: str | None
    # (parameter, dependency, its request parameter, cached per request)
    deps: tuple[tuple[str, Callable[..., Awaitable[Any]], str, bool], ...]


def _ineligible(route: APIRoute, why: str) -> TypeError:
    return TypeError(f"LeanRoute {route.path}: {why}; declare it as a plain APIRoute")


def _request_only(route: APIRoute, d: Dependant) -> str:
    """The request parameter of a dependency that takes only the request."""
    if not (inspect.iscoroutinefunction(d.call) and d.request_param_name and
            not (d.dependencies or d.path_params or d.query_params or d.header_params or
                 d.cookie_params or d.body_params or d.websocket_param_name or
                 d.http_connection_param_name or d.response_param_name or
                 d.background_tasks_param_name or d.security_scopes_param_name or
                 d.own_oauth_scopes)):
        raise _ineligible(route, f"dependency {d.name!r} must be an `async def` taking only "
                          "the Request")
    return d.request_param_name


def _plan(route: APIRoute, dependant: Dependant) -> _Plan:
    d = dependant
    if not inspect.iscoroutinefunction(d.call):
        raise _ineligible(route, "the endpoint must be an `async def`")
    if route.response_field is not None:
        raise _ineligible(route, "the endpoint must return a Response")
    if (d.path_params or d.query_params or d.header_params or d.cookie_params or
            d.websocket_param_name or d.http_connection_param_name or d.response_param_name
            or d.background_tasks_param_name or d.security_scopes_param_name):
        raise _ineligible(route, "only a body model, the Request and dependencies")
    if len(d.body_params) != 1 or route._embed_body_fields:
        raise _ineligible(route, "exactly one body parameter, not embedded")
    body = d.body_params[0]
    model = body.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or \
            not body.field_info.is_required() or body.field_info.metadata:
        raise _ineligible(route, "the body must be a required pydantic model")
    deps = tuple((sub.name, sub.call, _request_only(route, sub), sub.use_cache)
                 for sub in d.dependencies if sub.name is not None and sub.call is not None)
    if len(deps) != len(d.dependencies):
        raise _ineligible(route, "every dependency must be a named parameter")
    assert d.call is not None
    return _Plan(d.call, body.name, model, d.request_param_name, deps)


def _json_content_type(request: Request) -> bool:
    return _json_headers(request.scope)


def _json_headers(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":  # the first one, as FastAPI reads it
            value = value.lower()
            return value == _JSON or value.startswith(_JSON + b";")
    return False


async def _call(plan: Any, values: dict[str, Any], request: Request, route: APIRoute,
                kind: str) -> Response:
    """Call a planned route's request-only dependencies (each once where FastAPI would
    cache it), then its endpoint with `values` and them; the endpoint returns a Response."""
    cache: dict[Any, Any] = {}
    for name, call, request_name, use_cache in plan.deps:
        if use_cache and call in cache:
            values[name] = cache[call]
        else:
            values[name] = cache[call] = await call(**{request_name: request})
    if plan.request_name:
        values[plan.request_name] = request
    response = await plan.endpoint(**values)
    if not isinstance(response, Response):
        raise TypeError(f"{kind} {route.path}: the endpoint returned "
                        f"{type(response).__name__}, not a Response")
    return response


def _included_dependant(route: APIRoute) -> Any:
    """The dependant FastAPI builds `route`'s handler for. Included in an app, FastAPI
    (0.16x) builds the handler once per inclusion, for that inclusion's dependant (the
    including router's dependencies added): plan the same one. Older FastAPI copied the
    route on inclusion: its own dependant is it."""
    current = getattr(routing, "_effective_route_context_var", None)
    context = current.get() if current is not None else None
    if context is not None and context.original_route is route:
        return context.dependant
    return route.dependant


class LeanRoute(APIRoute):
    """See the module docstring. Use with `lean_route`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        plan = _plan(self, _included_dependant(self))

        async def handler(request: Request) -> Response:
            if (request.app.dependency_overrides or not _json_content_type(request)
                    or (_telemetry is not None and _telemetry() is not None)):
                return await full(request)
            body = await request.body()
            try:
                value = plan.model.model_validate_json(body)
            except ValidationError:  # FastAPI answers it, exactly as it always did
                return await full(request)
            values: dict[str, Any] = {}
            values[plan.body_name] = value
            return await _call(plan, values, request, self, "LeanRoute")

        return handler


def lean_route(router: APIRouter, path: str, *, methods: list[str],
               **options: Any) -> Callable[[F], F]:
    """`@router.post(path, ...)` for a LeanRoute: `@lean_route(router, path, methods=["POST"],
    ...)` (FastAPI's decorators take no route class of their own)."""
    def add(endpoint: F) -> F:
        router.add_api_route(path, endpoint, methods=methods, route_class_override=LeanRoute,
                             **options)
        return endpoint
    return add


# --- the front door: a LeanRoute's plain request served above the app's own layers -----

_VALUE = "microcred.lean.value"  # the parsed body, handed from the door to the endpoint


def _endpoint(route: APIRoute, plan: _Plan) -> ASGIApp:
    """The route's endpoint as an ASGI app, for a request whose body the door parsed."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await _call(plan, {plan.body_name: scope.pop(_VALUE)}, request, route,
                               "LeanRoute")
        await response(scope, receive, send)
    return app


def _first_to_match(api: FastAPI, router: APIRouter, route: APIRoute, method: str) -> bool:
    """Whether the app's router sends a `method` request for `route`'s path to `route`:
    the first route of the app that matches it in full is `router` included as it is (no
    prefix, no dependencies of its own), and the first of `router` that does is `route`."""
    scope = {"type": "http", "method": method, "path": route.path, "root_path": "",
             "headers": []}
    first = next((r for r in api.router.routes if r.matches(scope)[0] == Match.FULL), None)
    context = getattr(first, "include_context", None)
    if getattr(first, "original_router", None) is not router or context is None or \
            context.prefix or context.dependencies:
        return False
    return next((r for r in router.routes if r.matches(scope)[0] == Match.FULL),
                None) is route


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class FrontDoor:
    """The outermost middleware of a service's app (installed by `ServiceRuntime.app` when
    no spans are recorded): serves the plain request of the app's LeanRoutes — the exact
    path and method, a JSON content type, no unstorable character in the URL, the headers
    or the body (`storable`), a body the model accepts, no dependency overrides, FastAPI's
    own telemetry off — with only the layers that act on such a request (`layers`: handing
    the incoming trace context on, the request's timing and count) and the app's exception
    handlers around the endpoint. The middlewares between, the router's matching, the
    exit-stack middleware and FastAPI's request handling do nothing for it, and were a
    third of a one-result ingest request's CPU in process (issue 12, item 2, wave 16).
    Anything else goes down the app as it always did (its body, if read, replayed), so
    every refusal is the answer it was: the door only takes requests it can serve whole.
    A route is served here only while the app's router would send its requests to it
    (`_first_to_match`, checked when the app's middleware stack is built)."""

    def __init__(self, app: ASGIApp, *, api: FastAPI, routers: Sequence[APIRouter],
                 layers: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app, self._api = app, api
        handlers = {k: v for k, v in api.exception_handlers.items() if k not in (500, Exception)}
        self._doors: dict[tuple[str, str], tuple[APIRoute, type[BaseModel], ASGIApp]] = {}
        for router in routers:
            for route in router.routes:
                if not isinstance(route, LeanRoute):
                    continue
                plan = _plan(route, route.dependant)
                served = layers(ExceptionMiddleware(_endpoint(route, plan), handlers=handlers,
                                                    debug=api.debug))
                for method in route.methods or ():
                    if _first_to_match(api, router, route, method):
                        self._doors[(method, route.path)] = (route, plan.model, served)
        self.served = 0  # requests served at the door (tests, benchmarks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self._doors.get((scope.get("method", ""), scope.get("path", ""))) \
            if scope["type"] == "http" and not scope.get("root_path") else None
        if (door is None or self._api.dependency_overrides or not _json_headers(scope)
                or (_telemetry is not None and _telemetry() is not None)
                or unstorable_in_url_or_headers(scope)):
            await self.app(scope, receive, send)
            return
        route, model, served = door
        read: list[Message] = []
        more = True
        while more:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay(read, receive), send)
                return
            more = message.get("more_body", False)
        body = b"".join(m.get("body", b"") for m in read)
        whole = _replay([{"type": "http.request", "body": body, "more_body": False}], receive)
        if unstorable_in_body(body):
            await self.app(scope, whole, send)
            return
        try:
            value = model.model_validate_json(body)
        except ValidationError:  # the app answers it, exactly as it always did
            await self.app(scope, whole, send)
            return
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}
        scope.setdefault("router", self._api.router)
        scope[_VALUE] = value
        self.served += 1
        await served(scope, whole, send)


# --- reads: GET routes with path parameters -------------------------------------------

# The canonical spellings a path parameter is converted from on the fast path; any other
# spelling (upper-case or braced UUIDs, signs, blanks, huge numbers) is left to FastAPI,
# which accepts or refuses it as it always did.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_INT = re.compile(r"[0-9]{1,18}\Z")


def _as_str(value: str) -> str | None:
    return value


def _as_uuid(value: str) -> uuid.UUID | None:
    return uuid.UUID(value) if _UUID.match(value) else None


def _as_int(value: str) -> int | None:
    return int(value) if _INT.match(value) else None


_CONVERT: dict[Any, Callable[[str], Any]] = {str: _as_str, uuid.UUID: _as_uuid, int: _as_int}


@dataclass(frozen=True)
class _ReadPlan:
    endpoint: Callable[..., Awaitable[Any]]
    request_name: str | None
    # (parameter, its name in the path, converter: None for a spelling left to FastAPI)
    path: tuple[tuple[str, str, Callable[[str], Any]], ...]
    deps: tuple[tuple[str, Callable[..., Awaitable[Any]], str, bool], ...]


def _read_plan(route: APIRoute, dependant: Dependant) -> _ReadPlan:
    d = dependant
    if not inspect.iscoroutinefunction(d.call):
        raise _ineligible(route, "the endpoint must be an `async def`")
    if (d.query_params or d.header_params or d.cookie_params or d.body_params or
            d.websocket_param_name or d.http_connection_param_name or d.response_param_name
            or d.background_tasks_param_name or d.security_scopes_param_name):
        raise _ineligible(route, "only path parameters, the Request and dependencies")
    path = []
    for field in d.path_params:
        info = field.field_info
        convert = _CONVERT.get(info.annotation)
        if convert is None or info.metadata or not info.is_required():
            raise _ineligible(route, f"path parameter {field.name!r} must be a plain str, "
                              "uuid.UUID or int")
        path.append((field.name, field.alias, convert))
    deps = tuple((sub.name, sub.call, _request_only(route, sub), sub.use_cache)
                 for sub in d.dependencies if sub.name is not None and sub.call is not None)
    if len(deps) != len(d.dependencies):
        raise _ineligible(route, "every dependency must be a named parameter")
    assert d.call is not None
    return _ReadPlan(d.call, d.request_param_name, tuple(path), deps)


class LeanReadRoute(APIRoute):
    """LeanRoute's idea for a read (issue 12, item 4): a route taking plain path
    parameters (str, uuid.UUID, int), the `Request` and dependencies that take only the
    request, and returning a `Response`. Its request is served without FastAPI's generic
    dependency solving and parameter validation when every path parameter is spelled
    canonically (a lower-case hyphenated UUID, decimal digits); anything else — another
    spelling, dependency overrides, FastAPI's own telemetry — goes to FastAPI's handler,
    which answers as it always did (its 422 included). The route is declared as before:
    its OpenAPI document, dependencies and problems are unchanged. Use with `lean_read`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        plan = _read_plan(self, _included_dependant(self))

        async def handler(request: Request) -> Response:
            if request.app.dependency_overrides or (
                    _telemetry is not None and _telemetry() is not None):
                return await full(request)
            values: dict[str, Any] = {}
            given = request.path_params
            for name, alias, convert in plan.path:
                value = convert(given[alias])
                if value is None:
                    return await full(request)
                values[name] = value
            return await _call(plan, values, request, self, "LeanReadRoute")

        return handler


def lean_read(router: APIRouter, path: str, **options: Any) -> Callable[[F], F]:
    """`@router.get(path, ...)` for a LeanReadRoute: `@lean_read(router, path, ...)`."""
    def add(endpoint: F) -> F:
        router.add_api_route(path, endpoint, methods=["GET"],
                             route_class_override=LeanReadRoute, **options)
        return endpoint
    return add
