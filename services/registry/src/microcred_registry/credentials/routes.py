"""HTTP side of the credentials context: a learner's credentials for operators, issuer
controller documents, signed status lists and our JSON-LD context. (The credential's own
URL, `GET /v1/credentials/{id}`, negotiates between the signed JSON and the page for
people: it lives with the pages, microcred_registry.pages.routes.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from microcred_registry.credentials import fresh_lists, handlers
from microcred_registry.credentials.domain import (
    LD_JSON,
    MICROCRED_CONTEXT,
    VC_JSON,
    status_list_url,
)
from microcred_registry.deps import BaseUrl, Engine, Operator
from microcred_shared.problems import Problem
from microcred_shared.vc import contexts

router = APIRouter()


@router.get("/v1/learners/{learner_key}/credentials")
async def learner_credentials(learner_key: str, _: Operator, base: BaseUrl,
                              engine: Engine) -> dict[str, Any]:
    return await handlers.learner_credentials(engine, learner_key, base)


@router.get("/issuers/{provider_id}")
async def issuer(provider_id: str, engine: Engine) -> JSONResponse:
    async with engine.connect() as conn:
        doc = await handlers.issuer_document(conn, provider_id)
    if doc is None:
        raise Problem(404, "Not found", f"no issuer {provider_id!r}", kind="not-found")
    return JSONResponse(doc, media_type=LD_JSON,
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/status/{provider_id}/{purpose}/{list_no}")
async def status_list(provider_id: str, purpose: str, list_no: int, request: Request,
                      base: BaseUrl, engine: Engine) -> Response:
    url = status_list_url(base, provider_id, purpose, list_no)
    # A list a credential issued a moment ago points into may be a few hundred ms behind.
    found = await fresh_lists.status_list_soon(engine, base, provider_id, purpose, list_no)
    if found is None:
        raise Problem(404, "Not found", f"no status list at {url}", kind="not-found")
    credential, version = found
    etag = f'"{version}"'
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return JSONResponse(credential, media_type=VC_JSON, headers=headers)


@router.get("/contexts/microcred/v1")
async def microcred_context() -> Response:
    return Response(contexts.context_file_bytes(MICROCRED_CONTEXT), media_type=LD_JSON,
                    headers={"Cache-Control": "public, max-age=86400"})
