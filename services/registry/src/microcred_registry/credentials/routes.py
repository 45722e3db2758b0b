"""HTTP side of the credentials context: a learner's credentials for operators, issuer
controller documents, signed status lists and our JSON-LD context. (The credential's own
URL, `GET /v1/credentials/{id}`, negotiates between the signed JSON and the page for
people: it lives with the pages, microcred_registry.pages.routes.)"""

from __future__ import annotations

import base64
import hashlib
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from microcred_registry.credentials import fresh_lists, handlers
from microcred_registry.credentials.domain import (
    DID_JSON,
    LD_JSON,
    MICROCRED_CONTEXT,
    VC_JSON,
    status_list_url,
)
from microcred_registry.deps import BaseUrl, Engine, OperatorReads, ReadsAt
from microcred_shared import problems
from microcred_shared.lean import lean_read
from microcred_shared.problems import Problem
from microcred_shared.vc import contexts

router = APIRouter()


# The hot reads are LeanReadRoutes (microcred_shared.lean): the same routes, OpenAPI and
# answers, served without FastAPI's generic dependency solving (issue 12, item 4).
@lean_read(router, "/v1/learners/{learner_key}/credentials",
           responses=problems.media(200, "application/json", description=(
               "the learner's credentials, oldest first: `learner`, `count`, and "
               "`credentials` (id, title, provider, status, issued_at, url, credential)")))
async def learner_credentials(learner_key: str, read: OperatorReads) -> Response:
    return Response(await handlers.learner_credentials_json(read.reads, learner_key,
                                                            read.base),
                    media_type="application/json")


# Verifiers that run in a browser (VerifierPlus, web wallets) fetch these documents
# across origins: every public verification document allows it.
PUBLIC = {"Access-Control-Allow-Origin": "*"}


@router.get("/issuers/{provider_id}",
            responses={**problems.responses(404), **problems.media(200, LD_JSON)})
async def issuer(provider_id: str, base: BaseUrl, engine: Engine) -> JSONResponse:
    """The issuer's profile, and the controller document of credentials issued before
    issuers were did:web (ADR 22)."""
    async with engine.connect() as conn:
        doc = await handlers.issuer_document(conn, provider_id, base)
    if doc is None:
        raise Problem(404, "Not found", f"no issuer {provider_id!r}", kind="not-found")
    return JSONResponse(doc, media_type=LD_JSON,
                        headers={"Cache-Control": "public, max-age=300", **PUBLIC})


@router.get("/issuers/{provider_id}/did.json",
            responses={**problems.responses(404), **problems.media(200, DID_JSON)})
async def issuer_did(provider_id: str, base: BaseUrl, engine: Engine) -> JSONResponse:
    """The DID document of `did:web:<host%3Aport>:issuers:<provider_id>` (ADR 22)."""
    if not base.startswith("https://"):
        raise Problem(404, "Not found", "did:web needs an https MICROCRED_PUBLIC_BASE_URL",
                      kind="not-found")
    async with engine.connect() as conn:
        doc = await handlers.issuer_document(conn, provider_id, base, did=True)
    if doc is None:
        raise Problem(404, "Not found", f"no issuer {provider_id!r}", kind="not-found")
    return JSONResponse(doc, media_type=DID_JSON,
                        headers={"Cache-Control": "public, max-age=300", **PUBLIC})


@lean_read(router, "/status/{provider_id}/{purpose}/{list_no}", responses={
    **problems.responses(404), **problems.media(200, VC_JSON),
    304: {"description": "unchanged since the ETag given in If-None-Match"}})
async def status_list(provider_id: str, purpose: str, list_no: int, request: Request,
                      read: ReadsAt) -> Response:
    base, reads = read.base, read.reads
    url = status_list_url(base, provider_id, purpose, list_no)
    # The stored JSON as it is, in one round trip (microcred_registry.reads)...
    stored = await handlers.status_list_json(reads, url)
    if stored is None:
        # ...and a list a credential issued a moment ago points into may be a few hundred
        # ms behind.
        found = await fresh_lists.status_list_soon(reads, base, provider_id, purpose, list_no)
        if found is None:
            raise Problem(404, "Not found", f"no status list at {url}", kind="not-found")
        stored = json.dumps(found[0], ensure_ascii=False, separators=(",", ":")), found[1]
    body, version = stored
    etag = f'"{version}"'
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag, **PUBLIC}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body.encode(), media_type=VC_JSON, headers=headers)


@router.get(contexts.MICROCRED_V1_PATH, responses=problems.media(200, LD_JSON))
async def microcred_context() -> Response:
    """Our JSON-LD context, the very bytes credentials are signed against (ADR 22):
    immutable, its sha256 in `Content-Digest` (RFC 9530) and the `ETag`."""
    body = contexts.context_file_bytes(MICROCRED_CONTEXT)
    digest = hashlib.sha256(body)
    return Response(body, media_type=LD_JSON, headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": f'"sha256-{digest.hexdigest()}"',
        "Content-Digest": f"sha-256=:{base64.b64encode(digest.digest()).decode()}:",
        **PUBLIC})
