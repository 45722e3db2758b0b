"""HTTP side of the trust list (ADR 26), all public and CORS-open: wallets and browser
verifiers read it across origins. Short cache lifetimes with ETags, because a suspension
must reach verifiers within minutes."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from microcred_registry.deps import BaseUrl, Engine, Runtime
from microcred_registry.trust import domain, handlers, statements
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter(tags=["trust"])
CACHE = "public, max-age=60, must-revalidate"
PUBLIC = {"Access-Control-Allow-Origin": "*"}


def _cached(request: Request, body: bytes, media_type: str) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"Cache-Control": CACHE, "ETag": etag, **PUBLIC}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(domain.REGISTRY_PATH)
async def dcc_registry(request: Request, base: BaseUrl, engine: Engine) -> Response:
    """The providers in good standing, keyed by issuer DID, in the DCC registry format."""
    async with engine.connect() as conn:
        known = await handlers.providers(conn)
    doc = domain.dcc_registry(known.all, base, created=known.created, updated=known.updated)
    return _cached(request, json.dumps(doc, ensure_ascii=False).encode(), "application/json")


@router.get("/trust/known-registries.json")
async def known_registries(base: BaseUrl) -> JSONResponse:
    """This list as a wallet's or verifier's `knownDIDRegistries` entries."""
    return JSONResponse(domain.known_registries(base),
                        headers={"Cache-Control": "public, max-age=3600", **PUBLIC})


def _signing_key(rt: Runtime) -> Any:
    if not rt.settings.public_base_url.startswith("https://"):
        raise Problem(404, "Not found", "an OpenID Federation entity identifier is an https "
                      "URL: MICROCRED_PUBLIC_BASE_URL is not", kind="not-found")
    key = rt.settings.trust_key()
    if key is None:
        raise Problem(404, "Not found", "this registry publishes no federation statements "
                      "(MICROCRED_TRUST_SIGNING_KEY is not set)", kind="not-found")
    return key


_STATEMENT = problems.media(200, domain.ENTITY_STATEMENT_JWT)


@router.get(domain.FEDERATION_PATH, responses={**problems.responses(404), **_STATEMENT})
async def entity_configuration(rt: Runtime, base: BaseUrl) -> Response:
    """The trust anchor's entity configuration (OpenID Federation 1.0)."""
    jwt = statements.entity_configuration(base, _signing_key(rt),
                                          domain.federation_metadata(base), int(time.time()))
    return Response(jwt, media_type=domain.ENTITY_STATEMENT_JWT,
                    headers={"Cache-Control": "public, max-age=300", **PUBLIC})


@router.get(domain.FETCH_PATH, responses={**problems.responses(404), **_STATEMENT})
async def fetch(rt: Runtime, base: BaseUrl, engine: Engine, sub: str | None = None) -> Response:
    """The subordinate statement about a listed issuer DID; 404 when it is not listed."""
    key = _signing_key(rt)
    if not sub:
        raise Problem(400, "Bad request", "the 'sub' parameter names the issuer DID",
                      kind="invalid-request")
    async with engine.connect() as conn:
        provider = domain.provider_of(sub, base, (await handlers.providers(conn)).all)
        if provider is None:
            raise Problem(404, "Not found", f"{sub!r} is not on this trust list",
                          kind="not-found")
        jwks = await handlers.issuer_jwks(conn, provider.id, base)
    jwt = statements.subordinate_statement(
        base, domain.issuer_did(base, provider.id), key, jwks,
        domain.subordinate_metadata(provider, base), int(time.time()))
    return Response(jwt, media_type=domain.ENTITY_STATEMENT_JWT,
                    headers={"Cache-Control": CACHE, **PUBLIC})


@router.get(domain.LIST_PATH)
async def subordinates(base: BaseUrl, engine: Engine) -> JSONResponse:
    """The listed issuer DIDs (the federation list endpoint)."""
    async with engine.connect() as conn:
        known = await handlers.providers(conn)
    return JSONResponse([domain.issuer_did(base, p.id) for p in domain.listed(known.all)],
                        headers={"Cache-Control": CACHE, **PUBLIC})
