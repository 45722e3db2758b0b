"""OpenID4VCI 1.0, pre-authorized code flow (ADR 28). The learner side: an offer for a
credential of one's own (API and page). The wallet side, public and authenticated by what the
flow hands out: issuer and authorization-server metadata, `POST /token`, `POST /nonce`,
`POST /credential`. Wallet-side errors are OAuth errors as the spec defines them, not
problem details."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from microcred_registry.credentials.domain import credential_url
from microcred_registry.delivery.issuance import Issuance
from microcred_registry.deps import (
    BaseUrl,
    BrowserLearner,
    Engine,
    Language,
    Learner,
    Runtime,
    WalletService,
)
from microcred_registry.oid4vci import domain
from microcred_registry.oid4vci.domain import OAuthError
from microcred_registry.oid4vci.handlers import Offered, Oid4vci
from microcred_registry.pages import qr
from microcred_registry.pages.domain import listed
from microcred_registry.pages.i18n import translator
from microcred_registry.pages.rendering import render
from microcred_shared import problems

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}
# The wallet side answers errors as OAuth 2.0 and OpenID4VCI define them; the shared layers
# (strict input, an unreachable database) may still answer a problem.
OAUTH_ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "error_description": {"type": "string"}}}


def _oauth(status: int, description: str) -> dict[int | str, Any]:
    out: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": OAUTH_ERROR},
        problems.PROBLEM: {"schema": {"$ref": problems.REF}}}}
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if status == 503:
        out["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return {status: out}


TOKEN_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["grant_type", "pre-authorized_code"], "properties": {
            "grant_type": {"type": "string", "enum": [domain.PRE_AUTHORIZED_GRANT]},
            "pre-authorized_code": {"type": "string"}, "tx_code": {"type": "string"}}}}}}}
CREDENTIAL_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "properties": {
        "credential_configuration_id": {"type": "string"},
        "proofs": {"type": "object", "properties": {
            "jwt": {"type": "array", "items": {"type": "string"}}}}}}}}}}


def _service(rt: Runtime, engine: Engine, base: BaseUrl) -> Oid4vci:
    s = rt.settings
    return Oid4vci(engine, base, timedelta(seconds=s.oid4vci_offer_ttl_seconds),
                   Issuance(s.issuance_url, s.service_token), rt.wake_relay)


Service = Annotated[Oid4vci, Depends(_service)]


def _error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _offered(offered: Offered) -> dict[str, Any]:
    # No transaction code here: it goes to the learner by e-mail, a channel apart (ADR 31).
    return {"credential_offer": offered.offer, "credential_offer_link": offered.link,
            "tx_code_sent_by": "email", "expires_at": offered.expires_at.isoformat()}


@router.get("/.well-known/openid-credential-issuer")
async def issuer_metadata(base: BaseUrl) -> dict[str, Any]:
    return domain.issuer_metadata(base)


@router.get("/.well-known/oauth-authorization-server")
async def authorization_server(base: BaseUrl) -> dict[str, Any]:
    return domain.authorization_server_metadata(base)


@router.post("/v1/learner/credentials/{credential_id}/oid4vci-offer", status_code=201,
             responses=problems.responses(404, 409))
async def offer(credential_id: uuid.UUID, session: Learner, svc: Service,
                lang: Language) -> JSONResponse:
    """A single-use credential offer for a wallet; its transaction code is e-mailed to the
    learner (in `lang`), to the address the credential was issued to."""
    offered = await svc.offer(session.learner_key, credential_id, lang)
    return JSONResponse(_offered(offered), status_code=201, headers=NO_STORE)


@router.post("/learner/credentials/{credential_id}/wallets/openid", include_in_schema=False)
async def offer_page(credential_id: uuid.UUID, request: Request, session: BrowserLearner,
                     svc: Service, wallet: WalletService, base: BaseUrl,
                     lang: Language) -> Response:
    """The offer as a QR code and link; the transaction code goes by e-mail (ADR 31)."""
    if session is None:
        return RedirectResponse(f"{base}/learner", status_code=303)
    row = await wallet.held(session, credential_id)
    offered = await svc.offer(session.learner_key, credential_id, lang)
    t = translator(lang)
    title, _ = listed(dict(row.document), lang, row.title)
    return render(request, "oid4vci_offer.html", headers=NO_STORE, title=title,
                  qr=qr.inline(offered.link, t("oid4vci.qr")), link=offered.link,
                  back=credential_url(base, credential_id),
                  expires=offered.expires_at.strftime("%Y-%m-%d %H:%M"))


@router.post("/token", openapi_extra=TOKEN_BODY, responses={
    **_oauth(400, "invalid_request, invalid_grant (unknown, used or expired code, wrong "
             "tx_code) or unsupported_grant_type")})
async def token(request: Request, svc: Service) -> JSONResponse:
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return _error(OAuthError("invalid_request",
                                 "the token request is application/x-www-form-urlencoded"))
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    if any(len(v) > 1 for v in raw.values()):
        return _error(OAuthError("invalid_request", "a parameter is repeated"))
    try:
        body = await svc.token({k: v[0] for k, v in raw.items()})
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse(body, headers=NO_STORE)


@router.post("/nonce")
async def nonce(svc: Service) -> JSONResponse:
    return JSONResponse({"c_nonce": await svc.nonce()}, headers=NO_STORE)


@router.post("/credential", openapi_extra=CREDENTIAL_BODY, responses={
    **_oauth(400, "invalid_credential_request, unknown_credential_configuration, "
             "invalid_proof, invalid_nonce or credential_request_denied"),
    **_oauth(401, "invalid_token: no access token, or one unknown, used or expired"),
    **_oauth(503, "server_error: issuance could not sign the credential just now")})
async def credential(request: Request, svc: Service) -> JSONResponse:
    scheme, _, access = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not access:
        return _error(OAuthError("invalid_token", "an access token is required", 401))
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _error(OAuthError("invalid_credential_request", "the body is not JSON"))
    if not isinstance(body, dict):
        return _error(OAuthError("invalid_credential_request", "the body is not an object"))
    try:
        out = await svc.credential(access, body)
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse(out, headers=NO_STORE)
