"""A LeanReadRoute answers every request exactly as FastAPI's own handling of the same
route does (issue 12, item 4: the registry's hot reads skip FastAPI's generic dependency
solving and parameter validation). The same endpoint is served twice in one app of the
shared runtime — as a plain APIRoute and as a LeanReadRoute — and every spelling of its
path parameters and every credential below gets the same status, headers and body from
both; the fast path is taken for the canonical spelling only, and dependency overrides
still apply. A dict that FastAPI serialized before is the same bytes as the JSONResponse
a lean read returns now (the registry's verification)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from microcred_shared.lean import LeanReadRoute, lean_read
from microcred_shared.problems import Problem, declares

calls: list[str] = []


@declares(401)
async def reader(request: Request) -> str:
    calls.append(request.url.path)
    if request.headers.get("authorization") != "Bearer good":
        raise Problem(401, "Unauthorized", "a valid key is required", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    return "operator"


Reader = Annotated[str, Depends(reader)]


async def read(item_id: uuid.UUID, number: int, name: str, who: Reader, again: Reader,
               request: Request) -> Response:
    if number == 404:
        raise Problem(404, "Not found", f"no item {item_id}", kind="not-found")
    return JSONResponse({"id": str(item_id), "number": number, "name": name, "who": who,
                         "again": again, "query": str(request.query_params)},
                        headers={"X-Item": str(item_id)})


RESULT = {"verified": False, "status": "revoked", "checks": [
    {"check": "proof", "ok": True, "detail": "signed by did:web:é.example#key-1 ✓"},
    {"check": "status", "ok": None, "detail": "list \"unreachable\"\n\ttab \u2028 \x01"}],
    "problems": ["status: list \"unreachable\"", "ünïcödé 😀 </script>"]}


async def as_dict(item_id: uuid.UUID) -> dict[str, Any]:
    return RESULT


async def as_response(item_id: uuid.UUID) -> JSONResponse:
    return JSONResponse(RESULT)


router = APIRouter()  # served by the `app` fixture (conftest.py)
router.add_api_route("/plain/{item_id}/{number}/{name}", read, methods=["GET"])
lean_read(router, "/lean/{item_id}/{number}/{name}")(read)
router.add_api_route("/dict/{item_id}", as_dict, methods=["GET"])
lean_read(router, "/json/{item_id}", response_model=dict[str, Any])(as_response)


async def both(client: httpx.AsyncClient, path: str, headers: dict[str, str],
               ) -> tuple[tuple[int, dict[str, str], str], tuple[int, dict[str, str], str]]:
    def answer(r: httpx.Response) -> tuple[int, dict[str, str], str]:
        heads = {k: v for k, v in r.headers.items() if k != "content-length"}
        return r.status_code, heads, r.text.replace("/plain/", "/ROUTE/").replace(
            "/lean/", "/ROUTE/")

    return (answer(await client.get("/plain/" + path, headers=headers)),
            answer(await client.get("/lean/" + path, headers=headers)))


GOOD = {"authorization": "Bearer good"}
ID = "6f1c2b9e-3d4a-4e5f-8a7b-0c1d2e3f4a5b"
PATHS = {
    "canonical": f"{ID}/7/alice",
    "a query string": f"{ID}/7/alice?lang=fr&x=1",
    "an encoded name": f"{ID}/7/al%20ice%2Fb",
    "a leading zero": f"{ID}/007/alice",
    "the problem the endpoint raises": f"{ID}/404/alice",
    "upper-case id": f"{ID.upper()}/7/alice",
    "id without hyphens": f"{ID.replace('-', '')}/7/alice",
    "braced id": f"{{{ID}}}/7/alice",
    "urn id": f"urn:uuid:{ID}/7/alice",
    "a short id": f"{ID[:-1]}/7/alice",
    "not an id": "item-1/7/alice",
    "a negative number": f"{ID}/-7/alice",
    "a signed number": f"{ID}/+7/alice",
    "a spaced number": f"{ID}/%207/alice",
    "an underscored number": f"{ID}/1_000/alice",
    "a huge number": f"{ID}/{10 ** 30}/alice",
    "a float": f"{ID}/7.0/alice",
    "not a number": f"{ID}/seven/alice",
}


@pytest.mark.parametrize("name", list(PATHS))
async def test_every_spelling_gets_the_same_answer_from_both(client: httpx.AsyncClient,
                                                             name: str) -> None:
    plain, lean = await both(client, PATHS[name], GOOD)
    assert plain == lean


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer bad"},
                                     {"authorization": "Basic good"}])
async def test_a_refused_caller_gets_the_same_answer_from_both(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    plain, lean = await both(client, PATHS["canonical"], headers)
    assert plain == lean and lean[0] == 401


async def test_the_canonical_request_skips_fastapis_dependency_solving(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    solved: list[str] = []
    real = fastapi.routing.solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path.split("/")[1])
        return await real(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    calls.clear()
    plain, lean = await both(client, PATHS["canonical"], GOOD)
    assert plain == lean and lean[0] == 200
    assert json.loads(lean[2])["number"] == 7 and json.loads(lean[2])["who"] == "operator"
    assert solved == ["plain"]
    assert len(calls) == 2  # once per request: the dependency is cached
    await both(client, PATHS["upper-case id"], GOOD)
    assert solved == ["plain", "plain", "lean"]  # another spelling: FastAPI's own answer


async def test_dependency_overrides_still_apply(app: Any, client: httpx.AsyncClient) -> None:
    app.dependency_overrides[reader] = lambda: "someone-else"
    plain, lean = await both(client, PATHS["canonical"], {})
    assert plain == lean and json.loads(lean[2])["who"] == "someone-else"


async def test_a_json_response_is_the_bytes_fastapi_made_of_the_dict(
        client: httpx.AsyncClient) -> None:
    before = await client.get(f"/dict/{ID}")
    now = await client.get(f"/json/{ID}")
    assert before.status_code == now.status_code == 200
    assert before.content == now.content
    assert before.headers == now.headers
    assert json.loads(now.content) == RESULT


def test_the_openapi_is_the_same_for_both(app: Any) -> None:
    paths = app.openapi()["paths"]

    def operation(path: str) -> dict[str, Any]:
        op = dict(paths[path]["get"])
        op.pop("operationId")
        return json.loads(json.dumps(op).replace("_plain_", "_ROUTE_").replace(
            "_lean_", "_ROUTE_").replace("Plain", "ROUTE").replace("Lean", "ROUTE"))

    assert operation("/plain/{item_id}/{number}/{name}") == \
        operation("/lean/{item_id}/{number}/{name}")
    assert "401" in paths["/lean/{item_id}/{number}/{name}"]["get"]["responses"]
    def schema(path: str) -> dict[str, Any]:
        found = dict(paths[path]["get"]["responses"]["200"]["content"]["application/json"]
                     ["schema"])
        found.pop("title")  # named after the endpoint
        return found

    assert schema("/dict/{item_id}") == schema("/json/{item_id}") == {
        "type": "object", "additionalProperties": True}


def test_a_route_it_cannot_serve_is_refused_when_declared() -> None:
    async def with_query(item_id: str, limit: int = 10) -> Response:
        return Response()

    with pytest.raises(TypeError, match="LeanRoute /x/{item_id}"):
        LeanReadRoute("/x/{item_id}", with_query, methods=["GET"])

    async def a_float(item_id: float) -> Response:
        return Response()

    with pytest.raises(TypeError, match="plain str, uuid.UUID or int"):
        LeanReadRoute("/y/{item_id}", a_float, methods=["GET"])

    async def takes_the_runtime(item_id: str, who: Annotated[str, Depends(
            lambda request, r=Depends(reader): r)]) -> Response:  # noqa: B008
        return Response()

    with pytest.raises(TypeError, match="must be an `async def` taking only the Request"):
        LeanReadRoute("/z/{item_id}", takes_the_runtime, methods=["GET"])
