"""HTTP side of verification: a stored credential's result, any credential URL's result,
and the VC-API verify endpoint."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from microcred_registry.deps import BaseUrl, CredentialRead, CredentialViewer, Engine
from microcred_registry.verification import handlers
from microcred_registry.verification.domain import vcapi_failure
from microcred_shared import problems
from microcred_shared.lean import lean_read
from microcred_shared.problems import PROBLEM, TYPE_BASE, Problem

router = APIRouter()


# A LeanReadRoute (microcred_shared.lean): it returns its JSON as a Response, the bytes
# FastAPI made of the dict it returned before; `response_model` keeps the OpenAPI as it was.
@lean_read(router, "/v1/credentials/{credential_id}/verification",
           response_model=dict[str, Any], responses=problems.responses(404))
async def verification(credential_id: uuid.UUID, read: CredentialRead) -> JSONResponse:
    """A stored credential's live verification, for who may read the credential (ADR 9);
    404 otherwise. To verify a document you hold, POST it to /credentials/verify."""
    return JSONResponse(await handlers.verify_stored(read.reads, read.base, credential_id,
                                                     read.viewer))


@router.get("/v1/verify", responses=problems.responses(404, 410))
async def verify_url(base: BaseUrl, engine: Engine, viewer: CredentialViewer,
                     url: str = Query(description="a credential URL (https)")
                     ) -> dict[str, Any]:
    """The verification result for any credential URL; ours only as they may be read."""
    return await handlers.verify_url(engine, base, url, viewer)


@router.post("/credentials/verify")
async def verify(request: Request, base: BaseUrl, engine: Engine) -> JSONResponse:
    """VC-API: 200 when the credential verifies, 400 with the failed checks when not."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise Problem(400, "Invalid request body", "the body is not JSON") from exc
    doc = body.get("verifiableCredential") if isinstance(body, dict) else None
    if not isinstance(doc, dict):
        raise Problem(400, "Invalid request body",
                      "expected {\"verifiableCredential\": {...}, \"options\": {...}}")
    result = await handlers.verify_document(engine, base, doc)
    if result["verified"]:
        return JSONResponse(result)
    return JSONResponse(vcapi_failure(result, TYPE_BASE), status_code=400, media_type=PROBLEM)


@router.post("/presentations/verify")
async def verify_presentation(request: Request, base: BaseUrl, engine: Engine) -> JSONResponse:
    """VC-API: 200 when the holder's proof is bound to `options.challenge`/`domain` and
    every credential in the presentation verifies; 400 with the failed checks when not."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise Problem(400, "Invalid request body", "the body is not JSON") from exc
    vp = body.get("verifiablePresentation") if isinstance(body, dict) else None
    options = body.get("options", {}) if isinstance(body, dict) else None
    if not isinstance(vp, dict) or not isinstance(options, dict):
        raise Problem(400, "Invalid request body", "expected {\"verifiablePresentation\": "
                      "{...}, \"options\": {\"challenge\": ..., \"domain\": ...}}")
    for name in ("challenge", "domain"):
        if name in options and not isinstance(options[name], str):
            raise Problem(400, "Invalid request body", f"options.{name} must be a string")
    result = await handlers.verify_presented(engine, base, vp,
                                             challenge=options.get("challenge"),
                                             domain=options.get("domain"))
    if options.get("returnPresentation") is True:
        result["verifiablePresentation"] = vp
    if result["verified"]:
        return JSONResponse(result)
    return JSONResponse(vcapi_failure(result, TYPE_BASE), status_code=400, media_type=PROBLEM)
