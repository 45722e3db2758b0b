"""Every problem an operation can answer is in the OpenAPI (issue 13 item 6): what the
route declares, what its dependencies declare, and what the shared layers add to all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient

from microcred_shared import problems
from microcred_shared.problems import PROBLEM, Problem


@problems.declares(401)
def caller(request: Request) -> str:
    if request.headers.get("authorization") != "Bearer ok":
        raise Problem(401, "Unauthorized", "no", kind="unauthorized")
    return "ok"


Caller = Annotated[str, Depends(caller)]
router = APIRouter()


@router.get("/things/{thing_id}", responses=problems.responses(404))
async def read(thing_id: int, _: Caller) -> dict[str, int]:
    raise Problem(404, "Not found", f"no thing {thing_id}", kind="not-found")


@router.delete("/things/{thing_id}")
async def delete(thing_id: int) -> dict[str, int]:
    return {"deleted": thing_id}


def app() -> FastAPI:
    api = FastAPI()
    problems.install(api)
    api.include_router(router)
    problems.document(api)
    return api


def test_each_operation_lists_its_own_its_dependencies_and_the_shared_problems() -> None:
    doc = app().openapi()
    get = doc["paths"]["/things/{thing_id}"]["get"]["responses"]
    delete = doc["paths"]["/things/{thing_id}"]["delete"]["responses"]
    assert sorted(get) == ["200", "400", "401", "404", "422", "503"]
    assert sorted(delete) == ["200", "400", "422", "503"]  # no auth dependency, no 404
    assert get["422"]["content"] == {PROBLEM: {"schema": {"$ref": problems.REF}}}
    assert get["503"]["headers"]["Retry-After"]["required"] is True
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_a_method_the_path_lacks_is_a_405_naming_every_method_it_has() -> None:
    with TestClient(app()) as client:
        r = client.put("/things/1")
        assert r.status_code == 405
        assert r.headers["content-type"] == PROBLEM
        assert set(r.headers["allow"].split(", ")) == {"GET", "DELETE"}
        assert client.get("/things/x", headers={"authorization": "Bearer ok"}).status_code == 400
