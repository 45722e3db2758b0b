"""A LeanRoute answers every request exactly as FastAPI's own handling of the same route
does (issue 12, item 2: the plain request skips FastAPI's generic machinery). The same
endpoint is served twice in one app of the shared runtime — as a plain APIRoute and as a
LeanRoute — and every body, content type and credential below gets the same status and
the same answer from both, the fast path is taken for the plain request, and dependency
overrides still apply."""

from __future__ import annotations

import json
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microcred_shared.contract.events import AssessmentResultSubmitted
from microcred_shared.lean import LeanRoute, lean_route
from microcred_shared.problems import Problem
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
    return JSONResponse(status_code=202, content={
        "who": who, "again": again, "path": request.url.path,
        "result": json.loads(result.model_dump_json())})


router = APIRouter()  # served by the `app` fixture (conftest.py)
router.add_api_route("/plain", submit, methods=["POST"], status_code=202)
lean_route(router, "/lean", methods=["POST"], status_code=202)(submit)


def valid() -> dict[str, Any]:
    return json.loads(result("lakeshore-college", "lakeshore-data-analytics-fundamentals",
                             result_id="r-1", score=80).model_dump_json())


async def both(client: httpx.AsyncClient, body: bytes, headers: dict[str, str],
               ) -> tuple[tuple[int, Any], tuple[int, Any]]:
    def answer(r: httpx.Response) -> tuple[int, Any]:
        text = r.text.replace("/plain", "/ROUTE").replace("/lean", "/ROUTE")
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
