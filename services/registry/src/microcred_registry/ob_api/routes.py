"""The 1EdTech Open Badges 3.0 API (ADR 30) under `/ims/ob/v3p0`: service discovery, the
authorization server (dynamic client registration, the consent page, token, revocation) and
the resource server (getCredentials, upsertCredential, getProfile, putProfile).

OAuth endpoints answer errors as RFC 6749 / 7591 / 7009 define them; the resource endpoints
as the spec's `Imsx_StatusInfo`. The shared layers (strict input, an unreachable database)
may still answer a problem, and every operation says so."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from microcred_registry.deps import BaseUrl, BrowserLearner, Engine, Learner, Runtime
from microcred_registry.ob_api import domain
from microcred_registry.ob_api.domain import ApiError, AuthorizationRequest, OAuthError
from microcred_registry.ob_api.handlers import Lifetimes, ObApi, UnknownClient
from microcred_registry.pages import returns
from microcred_registry.pages.rendering import PAGE_HEADERS, render
from microcred_registry.verification.handlers import verify_document
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter(tags=["Open Badges 3.0 API"])
API = domain.API
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON_TYPES = ("application/json", "application/ld+json", "application/vc+ld+json")
AUTHORIZE_FIELDS = ("response_type", "client_id", "redirect_uri", "scope", "state",
                    "code_challenge", "code_challenge_method")

OAUTH_ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "error_description": {"type": "string"}}}
IMSX = {"type": "object", "required": ["imsx_codeMajor", "imsx_severity"], "properties": {
    "imsx_codeMajor": {"type": "string", "enum": ["failure", "processing", "success",
                                                  "unsupported"]},
    "imsx_severity": {"type": "string", "enum": ["error", "status", "warning"]},
    "imsx_description": {"type": "string"},
    "imsx_codeMinor": {"type": "object"}}}


def _answer(status: int, description: str, schema: dict[str, Any],
            header: str | None = None) -> dict[int | str, Any]:
    out: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": schema},
        problems.PROBLEM: {"schema": {"$ref": problems.REF}}}}
    if header:
        out["headers"] = {header: {"schema": {"type": "string"}}}
    return {status: out}


def _oauth(status: int, description: str) -> dict[int | str, Any]:
    """An RFC 6749 error answer (401 with WWW-Authenticate)."""
    return _answer(status, description, OAUTH_ERROR,
                   "WWW-Authenticate" if status == 401 else None)


def _imsx(*statuses: int) -> dict[int | str, Any]:
    """Imsx_StatusInfo answers of a resource endpoint."""
    said = {400: "invalid_query_parameter or invalid_data", 401: "no valid access token",
            403: "the token lacks the operation's scope, or the credential is someone "
                 "else's", 404: "not found"}
    out: dict[int | str, Any] = {}
    for s in statuses:
        out.update(_answer(s, f"Imsx_StatusInfo: {said.get(s, '')}", IMSX,
                           "WWW-Authenticate" if s in (401, 403) else None))
    return out


def _service(rt: Runtime, engine: Engine, base: BaseUrl) -> ObApi:
    s = rt.settings
    return ObApi(engine, base, Lifetimes(
        code=timedelta(seconds=s.ob_code_ttl_seconds),
        access=timedelta(seconds=s.ob_access_ttl_seconds),
        refresh=timedelta(seconds=s.ob_refresh_ttl_seconds)))


Service = Annotated[ObApi, Depends(_service)]


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="ob"'
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _api_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _form(request: Request) -> dict[str, str] | OAuthError:
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return OAuthError("invalid_request", "the body is application/x-www-form-urlencoded")
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    if any(len(v) > 1 for v in raw.values()):
        return OAuthError("invalid_request", "a parameter is repeated")
    return {k: v[0] for k, v in raw.items()}


# --- discovery ---------------------------------------------------------------------------


@router.get(f"{API}/discovery", responses=_imsx(500) | {200: {
    "description": "the ServiceDescriptionDocument (OpenAPI 3.0)"}})
async def discovery(rt: Runtime, base: BaseUrl) -> JSONResponse:
    s = rt.settings
    return JSONResponse(domain.service_description(
        base, name=s.ob_service_name, terms_url=s.ob_terms_url or f"{base}/",
        privacy_url=s.ob_privacy_url or f"{base}/"))


# --- the authorization server -----------------------------------------------------------

REGISTER_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["client_name", "client_uri", "redirect_uris",
                                              "scope"], "properties": {
        "client_name": {"type": "string"}, "client_uri": {"type": "string"},
        "logo_uri": {"type": "string"}, "tos_uri": {"type": "string"},
        "policy_uri": {"type": "string"}, "software_id": {"type": "string"},
        "software_version": {"type": "string"},
        "redirect_uris": {"type": "array", "items": {"type": "string"}},
        "token_endpoint_auth_method": {"type": "string", "enum": list(domain.AUTH_METHODS)},
        "grant_types": {"type": "array", "items": {"type": "string",
                                                   "enum": list(domain.GRANT_TYPES)}},
        "response_types": {"type": "array", "items": {"type": "string", "enum": ["code"]}},
        "scope": {"type": "string"},
        "contacts": {"type": "array", "items": {"type": "string"}}}}}}}}


@router.post(f"{API}/auth/register", status_code=201, openapi_extra=REGISTER_BODY,
             responses={201: {"description": "the client's id and secret (RFC 7591)"},
                        **_oauth(400, "invalid_redirect_uri or invalid_client_metadata "
                                 "(RFC 7591 §3.2.2)")})
async def register(request: Request, svc: Service) -> JSONResponse:
    """OAuth 2.0 Dynamic Client Registration (RFC 7591), open to any host platform: the
    learner approves each client on the consent page before it reads anything."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _oauth_error(OAuthError("invalid_client_metadata", "the body is not JSON"))
    try:
        out = await svc.register(body)
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(out, status_code=201, headers=NO_STORE)


AUTHORIZE_PARAMS = {"parameters": [
    {"name": n, "in": "query", "required": n in ("response_type", "client_id",
                                                  "code_challenge", "code_challenge_method"),
     "schema": {"type": "string"}} for n in AUTHORIZE_FIELDS]}
_PAGE_OR_REDIRECT = {
    **problems.media(200, "text/html", description="the consent page (signed in) or the "
                     "sign-in page"),
    400: {**problems.response(400, "text/html"), "description": "an unknown client or "
          "redirect URI (a page: the browser is not sent back to it), or malformed input"},
    302: {"description": "back to the client's redirect URI with `code` and `state`, or "
                         "with `error` (RFC 6749 §4.1.2.1)"}}
DECISION_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
        **{n: {"type": "string"} for n in AUTHORIZE_FIELDS},
        "decision": {"type": "string", "enum": ["approve", "deny"]}}}}}}}


def _params(request: Request, source: dict[str, str] | None = None) -> dict[str, str]:
    if source is not None:
        return {k: v for k, v in source.items() if k in AUTHORIZE_FIELDS}
    return {k: v for k, v in request.query_params.items() if k in AUTHORIZE_FIELDS}


async def _authorization(request: Request, svc: ObApi, params: dict[str, str],
                         ) -> tuple[dict[str, Any], AuthorizationRequest] | Response:
    """An authorization request checked, or the answer to a bad one: an error page when the
    client or its redirect URI is unknown (never redirected), else an error back to the client."""
    try:
        return await svc.authorization(params)
    except UnknownClient as exc:
        return _unknown_client(request, "client" if "client_id" in str(exc) else "redirect")
    except OAuthError as exc:
        return _back(params["redirect_uri"], error=exc.error,
                     error_description=exc.description, state=params.get("state"))


def _unknown_client(request: Request, reason: str) -> Response:
    return render(request, "ob_error.html", status=400, reason=reason)


def _back(uri: str, **params: str | None) -> RedirectResponse:
    return RedirectResponse(domain.redirect(uri, **params), status_code=302,
                            headers=NO_STORE)


def _consent(request: Request, client: Any, req: AuthorizationRequest) -> Response:
    meta = client["client_metadata"]
    target = urlsplit(req.redirect_uri)
    origin = f"{target.scheme}://{target.netloc}"
    # The answer to the form is a redirect to the client: form-action must allow it.
    csp = PAGE_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {origin}")
    fields = {"response_type": "code", "client_id": req.client_id,
              "redirect_uri": req.redirect_uri, "scope": " ".join(req.scope),
              "code_challenge": req.code_challenge, "code_challenge_method": "S256"}
    if req.state is not None:
        fields["state"] = req.state
    return render(request, "ob_consent.html", headers={"Content-Security-Policy": csp},
                  client_name=meta.get("client_name", req.client_id),
                  client_uri=meta.get("client_uri"), redirect_host=target.netloc,
                  scopes=[s for s in req.scope if s in domain.SCOPES],
                  offline=domain.OFFLINE in req.scope, fields=fields,
                  action=f"{API}/auth/authorize")


@router.get(f"{API}/auth/authorize", openapi_extra=AUTHORIZE_PARAMS,
            responses=_PAGE_OR_REDIRECT)
async def authorize(request: Request, session: BrowserLearner, svc: Service,
                    base: BaseUrl) -> Response:
    """The authorization endpoint: the signed-in learner sees which application asks for
    what and approves or refuses; not signed in, the sign-in page, which brings them back
    here once they have followed the e-mailed link."""
    if any(len(request.query_params.getlist(k)) > 1 for k in AUTHORIZE_FIELDS):
        return _unknown_client(request, "repeated")
    params = _params(request)
    checked = await _authorization(request, svc, params)
    if isinstance(checked, Response):
        return checked
    client, req = checked
    if session is None:
        here = f"{API}/auth/authorize?{urlencode(params)}"
        response = render(request, "ob_signin.html",
                          client_name=client["client_metadata"].get("client_name"))
        response.set_cookie(returns.RETURN_COOKIE, here, max_age=returns.RETURN_SECONDS,
                            httponly=True, secure=base.startswith("https://"),
                            samesite="lax", path="/")
        return response
    return _consent(request, client, req)


@router.post(f"{API}/auth/authorize", openapi_extra=DECISION_BODY, responses={
    400: _PAGE_OR_REDIRECT[400], 302: _PAGE_OR_REDIRECT[302],
    303: {"description": "not signed in (any more): back to the authorization request"}})
async def decide(request: Request, session: BrowserLearner, svc: Service,
                 base: BaseUrl) -> Response:
    """The consent form: approve (a code goes back to the client) or deny (access_denied).
    Every parameter is checked again; the form only counts from our own page (SameSite
    cookie and Origin check, BrowserLearner)."""
    form = await _form(request)
    if isinstance(form, OAuthError):
        return _unknown_client(request, "repeated")
    params = _params(request, form)
    checked = await _authorization(request, svc, params)
    if isinstance(checked, Response):
        return checked
    req = checked[1]
    if session is None:
        return RedirectResponse(f"{base}{API}/auth/authorize?{urlencode(params)}",
                                status_code=303)
    if form.get("decision") != "approve":
        return _back(req.redirect_uri, error="access_denied",
                     error_description="the learner did not approve the request",
                     state=req.state)
    code = await svc.approve(session.learner_key, req)
    return _back(req.redirect_uri, code=code, scope=" ".join(req.scope), state=req.state)


TOKEN_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["grant_type"], "properties": {
            "grant_type": {"type": "string", "enum": list(domain.GRANT_TYPES)},
            "code": {"type": "string"}, "redirect_uri": {"type": "string"},
            "code_verifier": {"type": "string"}, "refresh_token": {"type": "string"},
            "scope": {"type": "string"}, "client_id": {"type": "string"},
            "client_secret": {"type": "string"}}}}}}}


@router.post(f"{API}/auth/token", openapi_extra=TOKEN_BODY, responses={
    200: {"description": "access_token, token_type, expires_in, scope and refresh_token"},
    **_oauth(400, "invalid_request, invalid_grant (unknown, used or expired code, wrong "
             "redirect_uri or PKCE verifier), unauthorized_client, unsupported_grant_type "
             "or invalid_scope (RFC 6749 §5.2)"),
    **_oauth(401, "invalid_client: no or wrong client authentication")})
async def token(request: Request, svc: Service) -> JSONResponse:
    """The token endpoint: an authorization code (with its PKCE verifier) or a refresh token
    for an access token; the client authenticates with HTTP Basic (or the form)."""
    form = await _form(request)
    if isinstance(form, OAuthError):
        return _oauth_error(form)
    try:
        out = await svc.token(request.headers.get("authorization"), form)
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(out, headers=NO_STORE)


REVOKE_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["token"], "properties": {
            "token": {"type": "string"}, "token_type_hint": {"type": "string"}}}}}}}


@router.post(f"{API}/auth/revoke", openapi_extra=REVOKE_BODY, responses={
    200: {"description": "revoked, or not a token of this client (RFC 7009 §2.2)"},
    **_oauth(400, "invalid_request"),
    **_oauth(401, "invalid_client: no or wrong client authentication")})
async def revoke(request: Request, svc: Service) -> Response:
    form = await _form(request)
    if isinstance(form, OAuthError):
        return _oauth_error(form)
    try:
        await svc.revoke(request.headers.get("authorization"), form)
    except OAuthError as exc:
        return _oauth_error(exc)
    return Response(status_code=200, headers=NO_STORE)


# --- the resource server ----------------------------------------------------------------

CREDENTIALS_PARAMS = {"parameters": [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                "maximum": domain.MAX_LIMIT}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}]}


@router.get(f"{API}/credentials", openapi_extra=CREDENTIALS_PARAMS, responses={
    200: {"description": "GetOpenBadgeCredentialsResponse: the learner's credentials in "
                         "`credential` (all carry embedded proofs)", "headers": {
        "X-Total-Count": {"schema": {"type": "integer"}},
        "Link": {"schema": {"type": "string"}}}},
    **_imsx(400, 401, 403)})
async def get_credentials(request: Request, svc: Service, base: BaseUrl) -> Response:
    """getCredentials (scope credential.readonly), oldest first."""
    try:
        who = await svc.access(request.headers.get("authorization"), domain.READ_CREDENTIALS)
        limit, offset = domain.paging(dict(request.query_params))
        since = _since(request.query_params.get("since"))
    except ApiError as exc:
        return _api_error(exc)
    docs, total = await svc.credentials(who.learner_key, limit, offset, since)
    return JSONResponse({"credential": docs}, headers={
        "X-Total-Count": str(total), "Cache-Control": "no-store",
        "Link": domain.page_links(f"{base}{API}/credentials", limit=limit, offset=offset,
                                  total=total, since=request.query_params.get("since"))})


def _since(value: str | None) -> datetime | None:
    return None if value is None else domain.since(value)


UPSERT_BODY = {"requestBody": {"required": True, "content": {
    t: {"schema": {"type": "object", "description": "an OpenBadgeCredential with an "
                                                    "embedded proof"}} for t in JSON_TYPES}}}


@router.post(f"{API}/credentials", openapi_extra=UPSERT_BODY, responses={
    200: {"description": "it was held already (replaced if it came from elsewhere)"},
    201: {"description": "kept in the learner's backpack"},
    **_imsx(400, 401, 403)})
async def upsert_credential(request: Request, svc: Service, engine: Engine,
                            base: BaseUrl) -> Response:
    """upsertCredential (scope credential.upsert): a credential is verified before it is
    kept (its issuer's keys and status lists fetched under the outbound fetch guard, ours
    read locally); one issued here is the holder's already."""
    try:
        who = await svc.access(request.headers.get("authorization"), domain.UPSERT_CREDENTIAL)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "text/plain":
            raise ApiError(400, "invalid_data", "VC-JWT (compact JWS) credentials are not "
                           "accepted: send the credential as JSON with its embedded proof")
        if kind not in JSON_TYPES:
            raise ApiError(400, "invalid_data", "the body is an OpenBadgeCredential as JSON")
        try:
            document = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_data", "the body is not JSON") from exc
        created, held = await svc.upsert(
            who.learner_key, document, lambda doc: verify_document(engine, base, doc))
    except ApiError as exc:
        return _api_error(exc)
    return JSONResponse(held, status_code=201 if created else 200)


@router.get(f"{API}/profile", responses={200: {"description": "the learner's Profile"},
                                         **_imsx(401, 403)})
async def get_profile(request: Request, svc: Service) -> Response:
    """getProfile (scope profile.readonly)."""
    try:
        who = await svc.access(request.headers.get("authorization"), domain.READ_PROFILE)
    except ApiError as exc:
        return _api_error(exc)
    return JSONResponse(await svc.profile(who.learner_key))


PROFILE_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "description": "a Profile"}}}}}


@router.put(f"{API}/profile", openapi_extra=PROFILE_BODY, responses={
    200: {"description": "the learner's Profile as stored"}, **_imsx(400, 401, 403)})
async def put_profile(request: Request, svc: Service) -> Response:
    """putProfile (scope profile.update): the fields given replace the stored ones."""
    try:
        who = await svc.access(request.headers.get("authorization"), domain.UPDATE_PROFILE)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_data", "the body is not JSON") from exc
        return JSONResponse(await svc.put_profile(who.learner_key, body))
    except ApiError as exc:
        return _api_error(exc)


# --- the learner's API: the platforms they approved --------------------------------------


@router.get("/v1/learner/connections", tags=["learner"])
async def connections(session: Learner, svc: Service) -> JSONResponse:
    """The host platforms that hold a live Open Badges API token for the signed-in
    learner, and what each may do."""
    return JSONResponse({"connections": await svc.connections(session.learner_key)},
                        headers={"Cache-Control": "no-store"})


@router.delete("/v1/learner/connections/{connection_id}", status_code=204, tags=["learner"],
               responses=problems.responses(404))
async def disconnect(connection_id: uuid.UUID, session: Learner, svc: Service) -> Response:
    """Withdraw a platform's access: its access and refresh tokens stop working at once."""
    if not await svc.disconnect(session.learner_key, connection_id):
        raise Problem(404, "Not found", "no such connection of yours", kind="not-found")
    return Response(status_code=204)
