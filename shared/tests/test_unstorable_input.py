"""NUL and other input PostgreSQL cannot store is a 4xx problem with a clear reason, never a
500 (issue 13, item 6): the middleware every service's app gets from `ServiceRuntime.app`
(microcred_shared.storable). First its rules on a small app of the runtime, then every
operation of each service's real app, in process, as schemathesis found them."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from microcred_shared.runtime import ServiceRuntime
from microcred_shared.settings import ServiceSettings

router = APIRouter()
seen: list[Any] = []


@router.post("/echo")
async def echo(request: Request) -> Any:
    """Stores nothing: returns what the route received, to show what got through."""
    body = await request.body()
    seen.append(body)
    return {"length": len(body), "json": json.loads(body) if body[:1] in (b"{", b"[") else None}


@router.get("/things/{thing_id}")
async def thing(thing_id: str, q: str | None = None) -> dict[str, Any]:
    return {"id": thing_id, "q": q}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = ServiceRuntime(ServiceSettings(), []).app("test", routers=[router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        yield c


def assert_refused(r: httpx.Response, status: int, where: str, code: str = "U+0000") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/unstorable-character")
    assert problem["status"] == status
    assert where in problem["detail"] and code in problem["detail"], problem["detail"]


@pytest.mark.parametrize(("body", "where", "code"), [
    (b'{"name": "Ana\\u0000"}', "the body at /name", "U+0000"),
    (b'{"a": {"b/c": ["ok", "\\ud800"]}}', "the body at /a/b~1c/1", "U+D800"),
    (b'{"k\\u0000": 1}', "the body at /k\\u0000 (a key)", "U+0000"),
    (b'{"name": "Ana\x00"}', "the body (a NUL byte)", "U+0000"),
    (b"email=a%00b%40x.ca&language=en", "the form field 'email'", "U+0000"),
])
async def test_a_body_holding_an_unstorable_character_is_a_422(
        client: httpx.AsyncClient, body: bytes, where: str, code: str) -> None:
    seen.clear()
    r = await client.post("/echo", content=body, headers={"content-type": "application/json"})
    assert_refused(r, 422, where, code)
    assert seen == []  # the route never ran


@pytest.mark.parametrize("body", [
    b'{"name": "Zo\\u00eb \\ud83d\\ude00", "url": "https://x.example/a%00b"}',  # a pair; %00 text
    b'{"text": "a backslash then u0000: \\\\u0000"}',
    b'{"n": 1}' + b" " * 300_000,  # big
])
async def test_storable_bodies_reach_the_route_intact(client: httpx.AsyncClient,
                                                      body: bytes) -> None:
    seen.clear()
    r = await client.post("/echo", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert seen == [body] and r.json()["json"] == json.loads(body)


async def test_the_url_and_headers_are_checked_too(client: httpx.AsyncClient) -> None:
    assert_refused(await client.get("/things/a%00b"), 400, "the URL path")
    assert_refused(await client.get("/things/a?q=x%00"), 400, "the query parameter 'q'")
    assert_refused(await client.get("/things/a", headers={"authorization": "Bearer a\x00b"}),
                   400, "the header 'authorization'")
    assert_refused(await client.get("/things/a", headers={"cookie": 'sid="a\\000b"'}),
                   400, "the cookie 'sid'")
    ok = await client.get("/things/a%20b?q=%C3%A9%2500")
    assert ok.status_code == 200 and ok.json() == {"id": "a b", "q": "é%00"}


# --- every operation of every service's real app -----------------------------------------

SERVICES = ["assessment", "issuance", "registry", "notify"]


def real_app(service: str, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("MICROCRED_KEY_ENCRYPTION_KEY", "A" * 43)  # issuance needs one
    monkeypatch.setenv("MICROCRED_NOTIFY_SECRET_KEY", "A" * 43)  # and notify one
    app, _ = importlib.import_module(f"microcred_{service}.main").build()
    assert isinstance(app, FastAPI)
    return app


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in app.openapi()["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "patch",
                                                          "delete")]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_operation_of_every_service_refuses_nul_with_a_4xx_problem(
        service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """NUL in each path parameter, query parameter and request body of each operation in the
    service's OpenAPI, and in the Authorization header: a problem naming where it was. No
    engine is attached: had a request reached a route, it could not have answered 4xx."""
    app = real_app(service, monkeypatch)
    ops = operations(app)
    assert len(ops) >= 3
    tried = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://svc") as client:
        for method, template, op in ops:
            params = op.get("parameters", [])
            in_path = [p["name"] for p in params if p["in"] == "path"]
            in_query = [p["name"] for p in params if p["in"] == "query"]
            clean = template
            for name in in_path:
                clean = clean.replace("{" + name + "}", "x")
            for name in in_path:
                url = template
                for other in in_path:
                    url = url.replace("{" + other + "}", quote("x\x00" if other == name else "x"))
                assert_refused(await client.request(method, url), 400, "the URL path")
                tried += 1
            for name in in_query:
                r = await client.request(method, clean, params={name: "x\x00"})
                assert_refused(r, 400, f"the query parameter {name!r}")
                tried += 1
            if "requestBody" in op:
                r = await client.request(method, clean, json={"id": "x\x00", "name": "x"})
                assert_refused(r, 422, "the body at /id")
                tried += 1
            r = await client.request(method, clean, headers={"authorization": "Bearer x\x00y"})
            assert_refused(r, 400, "the header 'authorization'")
    assert tried >= len(ops) // 2, f"{service}: only {tried} inputs tried"
