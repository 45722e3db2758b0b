"""A LeanRoute answers every request exactly as FastAPI's own handling of the same route
does (issue 12, item 2: the plain request skips FastAPI's generic machinery). The same
endpoint is served twice in one app of the shared runtime — as a plain APIRoute and as a
LeanRoute — and every body, content type and credential below gets the same status and
the same answer from both, the fast path is taken for the plain request, and dependency
overrides still apply."""

from __future__ import annotations

import json
from typing import Annotated, Any

import asyncpg
import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.lean import FrontDoor, LeanRoute, lean_route
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of
from microcred_testkit.backbone import result

calls: list[str] = []


async def caller(request: Request) -> str:
    token = request.headers.get("authorization")
    calls.append(request.url.path)
    if token != "Bearer good":
        raise Problem(401, "Unauthorized", "a valid key is required", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    return "lakeshore-college"


Caller = Annotated[str, Depends(caller)]


async def submit(result: AssessmentResultSubmitted, who: Caller, again: Caller,
                 request: Request) -> JSONResponse:
    if result.result_id == "r-conflict":  # a problem the endpoint raises
        raise Problem(409, "Conflicting resubmission", "other content", kind="conflict")
    if result.result_id == "r-outage":  # the database cannot be reached: a 503 problem
        raise ConnectionRefusedError("the database is down")
    if result.result_id == "r-lost":  # the driver's connection lost mid-statement: a 503
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    return JSONResponse(status_code=202, content={
        "who": who, "again": again, "path": request.url.path,
        "route": request.scope["route"].path, "traceparent": traceparent_of(),
        "result": json.loads(result.model_dump_json())})


router = APIRouter()  # served by the `app` fixture (conftest.py)
router.add_api_route("/plain", submit, methods=["POST"], status_code=202)
lean_route(router, "/lean", methods=["POST"], status_code=202)(submit)
# Two routes for one path: the router sends its requests to the first, so the front door
# must not serve the second.


async def first(request: Request) -> JSONResponse:
    return JSONResponse(status_code=201, content={"first": True})


router.add_api_route("/shadowed", first, methods=["POST"])
lean_route(router, "/shadowed", methods=["POST"], status_code=202)(submit)


def valid() -> dict[str, Any]:
    return json.loads(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                             result_id="r-1", score=80).model_dump_json())


async def both(client: httpx.AsyncClient, body: bytes, headers: dict[str, str],
               ) -> tuple[tuple[int, Any], tuple[int, Any]]:
    def answer(r: httpx.Response) -> tuple[int, Any]:
        text = r.text.replace("/plain", "/ROUTE").replace("/lean", "/ROUTE")
        assert r.headers.get("content-type") in (None, "application/json",
                                                 "application/problem+json")
        return r.status_code, (json.loads(text) if text[:1] in "{[" else text)

    plain = await client.post("/plain", content=body, headers=headers)
    lean = await client.post("/lean", content=body, headers=headers)
    return answer(plain), answer(lean)


GOOD = {"authorization": "Bearer good", "content-type": "application/json"}


def _with(**change: Any) -> bytes:
    return json.dumps(valid() | change).encode()


def _learner(**change: Any) -> bytes:
    doc = valid()
    doc["learner"] = doc["learner"] | change
    return json.dumps(doc).encode()


def _dup_key() -> bytes:
    text = json.dumps(valid())
    return (text[:-1] + ', "result_id": "r-2"}').encode()


BODIES = {
    "valid": json.dumps(valid()).encode(),
    "valid, spaced and reordered": json.dumps(dict(reversed(valid().items())),
                                              indent=3).encode() + b"\n  ",
    "a key twice": _dup_key(),
    "score as a string": _with(score="80"),
    "score NaN": json.dumps(valid()).replace('"score": 80.0', '"score": NaN').encode(),
    "score Infinity": json.dumps(valid()).replace('"score": 80.0', '"score": -Infinity').encode(),
    "score 1e400": json.dumps(valid()).replace('"score": 80.0', '"score": 1e400').encode(),
    "score a huge integer": _with(score=10 ** 40),
    "score an integer": _with(score=80),
    "score true": _with(score=True),
    "passed as a string": _with(passed="yes"),
    "assessed_at a number": _with(assessed_at=12345),
    "assessed_at a date": _with(assessed_at="2026-11-03"),
    "assessed_at without offset": _with(assessed_at="2026-11-03T10:00:00"),
    "an unknown field": _with(colour="blue"),
    "a field missing": json.dumps({k: v for k, v in valid().items()
                                   if k != "definition_id"}).encode(),
    "null result_id": _with(result_id=None),
    "a bad address": _learner(email="not an address"),
    "a learner language not allowed": _learner(language="de"),
    "a learner as a list": _with(learner=[1, 2]),
    "not JSON": b"result_id=r-1",
    "truncated": json.dumps(valid()).encode()[:-5],
    "trailing garbage": json.dumps(valid()).encode() + b" x",
    "a byte-order mark": b"\xef\xbb\xbf" + json.dumps(valid()).encode(),
    "UTF-16": json.dumps(valid()).encode("utf-16"),
    "Latin-1 bytes": json.dumps(valid()).replace("r-1", "r-\u00e9").encode("latin-1"),
    "an array": b"[" + json.dumps(valid()).encode() + b"]",
    "null": b"null",
    "a string": b'"hello"',
    "empty": b"",
    "nested too deep": b'{"learner": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a NUL character": _with(result_id="r-\u0000"),
    "a lone surrogate": json.dumps(valid()).replace("r-1", "r-\\ud800").encode(),
    "a conflict the endpoint refuses": _with(result_id="r-conflict"),
    "a database outage": _with(result_id="r-outage"),
    "a connection lost on the driver": _with(result_id="r-lost"),
}


@pytest.mark.parametrize("name", list(BODIES))
async def test_every_body_gets_the_same_answer_from_both(client: httpx.AsyncClient,
                                                         name: str) -> None:
    plain, lean = await both(client, BODIES[name], GOOD)
    assert lean == plain


CONTENT_TYPES = [None, "text/plain", "application/json; charset=utf-8", "APPLICATION/JSON",
                 "application/ld+json", "application/json-patch+json", "application/jsonx",
                 "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("name", ["valid", "not JSON", "score as a string"])
async def test_every_content_type_gets_the_same_answer_from_both(
        client: httpx.AsyncClient, content_type: str | None, name: str) -> None:
    headers = {"authorization": "Bearer good"}
    if content_type:
        headers["content-type"] = content_type
    plain, lean = await both(client, BODIES[name], headers)
    assert lean == plain


@pytest.mark.parametrize("token", [None, "Bearer bad", "Basic good"])
@pytest.mark.parametrize("name", ["valid", "not JSON", "score as a string", "empty"])
async def test_a_refused_caller_gets_the_same_answer_from_both(
        client: httpx.AsyncClient, token: str | None, name: str) -> None:
    headers = {"content-type": "application/json"} | ({"authorization": token} if token
                                                      else {})
    plain, lean = await both(client, BODIES[name], headers)
    assert lean == plain
    # FastAPI's order: a body that is not JSON at all is refused as it is read, before
    # the dependencies; one that parses is judged after them.
    assert lean[0] == (400 if name == "not JSON" else 401)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(valid()) + ["learner.email", "learner.id",
                                                "learner.language", "learner.name"]),
       value=JSON | st.sampled_from(["2026-11-03T10:00:00Z", "2026-11-03T10:00:00+05:30",
                                     "a@b.ca", "en", 0, 100, 80.5, -1]))
async def test_any_field_set_to_any_json_gets_the_same_answer_from_both(
        client: httpx.AsyncClient, field: str, value: Any) -> None:
    doc = valid()
    if field.startswith("learner."):
        doc["learner"][field.removeprefix("learner.")] = value
    else:
        doc[field] = value
    plain, lean = await both(client, json.dumps(doc).encode(), GOOD)
    assert lean == plain


async def test_the_plain_request_skips_fastapis_dependency_solving(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    solved: list[str] = []
    real = fastapi.routing.solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await real(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    calls.clear()
    plain, lean = await both(client, BODIES["valid"], GOOD)
    assert plain == lean and lean[0] == 202
    assert lean[1]["who"] == lean[1]["again"] == "lakeshore-college"
    assert solved == ["/plain"]
    assert calls == ["/plain", "/lean"]  # once per request: the dependency is cached
    await both(client, BODIES["score as a string"], GOOD)
    assert solved == ["/plain", "/plain", "/lean"]  # refusals: FastAPI's own answer


async def test_dependency_overrides_still_apply(app: Any, client: httpx.AsyncClient) -> None:
    app.dependency_overrides[caller] = lambda: "coast-mountain-university"
    plain, lean = await both(client, BODIES["valid"], {"content-type": "application/json"})
    assert plain == lean and lean[1]["who"] == "coast-mountain-university"


def test_a_route_it_cannot_serve_is_refused_when_declared() -> None:
    async def by_id(result_id: str, request: Request) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(TypeError, match="LeanRoute /x/{result_id}"):
        LeanRoute("/x/{result_id}", by_id, methods=["POST"])

    async def returns_a_dict(result: AssessmentResultSubmitted) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="must return a Response"):
        LeanRoute("/y", returns_a_dict, methods=["POST"])


def _door(app: Any) -> FrontDoor:
    layer = app.middleware_stack
    while not isinstance(layer, FrontDoor):
        layer = layer.app
    return layer


async def test_the_plain_request_is_served_at_the_front_door(
        app: Any, client: httpx.AsyncClient) -> None:
    plain, lean = await both(client, BODIES["valid"], GOOD)
    door = _door(app)
    assert lean == plain and lean[0] == 202 and door.served == 1
    for name in ("score as a string", "not JSON", "a NUL character", "empty"):
        await both(client, BODIES[name], GOOD)
    await both(client, BODIES["valid"], {"authorization": "Bearer good"})  # no content type
    await client.post("/lean", content=BODIES["valid"], headers=GOOD | {"x-a": "\x00"})
    assert door.served == 1  # everything else went down the app, which answered it
    await both(client, BODIES["a conflict the endpoint refuses"], GOOD)
    assert door.served == 2  # served, and the endpoint's problem answered there


async def test_an_incoming_trace_is_handed_on_at_the_front_door(
        client: httpx.AsyncClient) -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    plain, lean = await both(client, BODIES["valid"], GOOD | {"traceparent": incoming})
    assert lean == plain
    assert lean[1]["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    plain, lean = await both(client, BODIES["valid"], GOOD)
    assert lean == plain and lean[1]["traceparent"] is None


async def test_front_door_requests_are_timed_and_counted_by_route_and_status(
        client: httpx.AsyncClient) -> None:
    for name in ("valid", "valid", "a conflict the endpoint refuses", "score as a string"):
        await client.post("/lean", content=BODIES[name], headers=GOOD)
    text = (await client.get("/metrics")).text

    def count(status: str) -> float:
        for line in text.splitlines():
            if line.startswith("microcred_http_request_seconds_count{") and \
                    'route="/lean"' in line and f'status="{status}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert (count("202"), count("409"), count("400")) == (2.0, 1.0, 1.0)


async def test_a_route_the_router_never_reaches_is_not_served_at_the_door(
        app: Any, client: httpx.AsyncClient) -> None:
    answer = await client.post("/shadowed", content=BODIES["valid"], headers=GOOD)
    assert answer.status_code == 201  # the first route declared for the path
    assert _door(app).served == 0


async def test_a_connection_lost_on_the_driver_is_a_503_to_retry(
        client: httpx.AsyncClient) -> None:
    """HTTP ingest's flush runs on the asyncpg connection itself (issue 12, wave 16): its
    lost connection is the same 503 with Retry-After as one lost under SQLAlchemy."""
    answer = await client.post("/lean", content=BODIES["a connection lost on the driver"],
                               headers=GOOD)
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert answer.json()["type"].endswith("/unavailable")
