"""The 1EdTech Open Badges 3.0 API (ADR 30) as pure rules: the scopes, the Service
Description Document, what a dynamic client registration (RFC 7591) may say, the PKCE check
(S256 only), the authorization request's checks, paging (`X-Total-Count`, `Link`), a
stored profile's fields, and the spec's `Imsx_StatusInfo` error body. No database, no
network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from microcred_shared.vc.contexts import OB_V3_URL

API = "/ims/ob/v3p0"
SCOPE_BASE = "https://purl.imsglobal.org/spec/ob/v3p0/scope/"
READ_CREDENTIALS = SCOPE_BASE + "credential.readonly"
UPSERT_CREDENTIAL = SCOPE_BASE + "credential.upsert"
READ_PROFILE = SCOPE_BASE + "profile.readonly"
UPDATE_PROFILE = SCOPE_BASE + "profile.update"
# `offline_access` is what OAuth clients (the spec's own examples) ask for a refresh token
# with; it is accepted and granted alongside the Open Badges scopes.
OFFLINE = "offline_access"
SCOPES: dict[str, str] = {
    READ_CREDENTIALS: "Permission to read the learner's OpenBadgeCredentials",
    UPSERT_CREDENTIAL: "Permission to create or update OpenBadgeCredentials in the "
                       "learner's backpack",
    READ_PROFILE: "Permission to read the learner's profile",
    UPDATE_PROFILE: "Permission to update the learner's profile",
}
KNOWN_SCOPES = (*SCOPES, OFFLINE)
GRANT_TYPES = ("authorization_code", "refresh_token")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
CLIENT_ID_PREFIX = "obc_"
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
# Client metadata kept (RFC 7591 §2 and the spec's registration table); others are ignored.
TEXT_FIELDS = ("client_name", "software_id", "software_version")
URI_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
# A profile's fields a learner (or a client with profile.update) may set; `id` and `type`
# are the host's.
PROFILE_TEXT = ("name", "givenName", "familyName", "additionalName", "description", "phone",
                "email")
PROFILE_URLS = ("url", "image")


class OAuthError(Exception):
    """An OAuth 2.0 error (RFC 6749 §5.2, RFC 7591 §3.2.2): `{"error",
    "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class ApiError(Exception):
    """An Open Badges API error, answered as `Imsx_StatusInfo`."""

    def __init__(self, status: int, minor: str, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.minor, self.description = status, minor, description
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_info(self.minor, self.description, status=self.status)


def status_info(minor: str, description: str, *, status: int = 400) -> dict[str, Any]:
    """The spec's `Imsx_StatusInfo`: failure, with severity `status` for a 404 and `error`
    otherwise, and the code minor naming what went wrong."""
    return {"imsx_codeMajor": "failure",
            "imsx_severity": "status" if status == 404 else "error",
            "imsx_description": description,
            "imsx_codeMinor": {"imsx_codeMinorField": [{
                "imsx_codeMinorFieldName": "TargetEndSystem",
                "imsx_codeMinorFieldValue": minor}]}}


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(12)


def urls(base: str) -> dict[str, str]:
    api = base + API
    return {"discovery": f"{api}/discovery", "register": f"{api}/auth/register",
            "authorize": f"{api}/auth/authorize", "token": f"{api}/auth/token",
            "revoke": f"{api}/auth/revoke", "credentials": f"{api}/credentials",
            "profile": f"{api}/profile"}


def _error_responses(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "Imsx_StatusInfo", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Imsx_StatusInfo"}}}} for s in statuses}


def service_description(base: str, *, name: str, terms_url: str, privacy_url: str,
                        image_url: str | None = None) -> dict[str, Any]:
    """`getServiceDescription`: a profiled OpenAPI 3.0 document of what this host serves,
    with the OAuth 2.0 authorization code security scheme (`OAuth2ACG`)."""
    u = urls(base)
    info: dict[str, Any] = {"title": name, "version": "3.0", "termsOfService": terms_url,
                            "x-imssf-privacyPolicyUrl": privacy_url}
    if image_url:
        info["x-imssf-image"] = image_url
    errors = _error_responses(400, 401, 403, 404, 500)

    def secured(scope: str) -> list[dict[str, list[str]]]:
        return [{"OAuth2ACG": [scope]}]

    return {
        "openapi": "3.0.1",
        "info": info,
        "servers": [{"url": base + API}],
        "tags": [{"name": "OpenBadgeCredentials"}, {"name": "Discovery"}],
        "paths": {
            "/credentials": {
                "get": {"tags": ["OpenBadgeCredentials"], "operationId": "getCredentials",
                        "security": secured(READ_CREDENTIALS), "parameters": [
                            {"name": "limit", "in": "query", "schema": {
                                "type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                            {"name": "offset", "in": "query", "schema": {
                                "type": "integer", "minimum": 0}},
                            {"name": "since", "in": "query", "schema": {
                                "type": "string", "format": "date-time"}}],
                        "responses": {"200": {"description": "GetOpenBadgeCredentialsResponse"},
                                      **errors}},
                "post": {"tags": ["OpenBadgeCredentials"], "operationId": "upsertCredential",
                         "security": secured(UPSERT_CREDENTIAL),
                         "responses": {"200": {"description": "replaced"},
                                       "201": {"description": "created"}, **errors}}},
            "/profile": {
                "get": {"tags": ["OpenBadgeCredentials"], "operationId": "getProfile",
                        "security": secured(READ_PROFILE),
                        "responses": {"200": {"description": "Profile"}, **errors}},
                "put": {"tags": ["OpenBadgeCredentials"], "operationId": "putProfile",
                        "security": secured(UPDATE_PROFILE),
                        "responses": {"200": {"description": "Profile"}, **errors}}},
            "/discovery": {
                "get": {"tags": ["Discovery"], "operationId": "getServiceDescription",
                        "responses": {"200": {"description": "ServiceDescriptionDocument"},
                                      **_error_responses(500)}}},
        },
        "components": {
            "securitySchemes": {"OAuth2ACG": {
                "type": "oauth2",
                "description": "OAuth 2.0 Authorization Code Grant authorization",
                "x-imssf-name": name,
                "x-imssf-privacyPolicyUrl": privacy_url,
                "x-imssf-registrationUrl": u["register"],
                "x-imssf-termsOfServiceUrl": terms_url,
                "flows": {"authorizationCode": {
                    "authorizationUrl": u["authorize"], "tokenUrl": u["token"],
                    "refreshUrl": u["token"], "scopes": dict(SCOPES)}}}},
            "schemas": {"Imsx_StatusInfo": {"type": "object", "required": [
                "imsx_codeMajor", "imsx_severity"]}},
        },
        # RFC 8414-style hints for clients that look for them.
        "x-microcred-revocationUrl": u["revoke"],
        "x-microcred-codeChallengeMethods": ["S256"],
    }


def _https_or_loopback(uri: str, *, loopback_http: bool) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    if not parts.hostname or parts.fragment or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    return loopback_http and parts.scheme == "http" and parts.hostname in (
        "localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Registration:
    metadata: dict[str, Any]  # what is echoed back and shown on the consent page
    redirect_uris: list[str]
    scope: list[str]
    grant_types: list[str]
    auth_method: str


def registration(body: Any) -> Registration:
    """Checks an RFC 7591 registration request against what the spec requires: a name and
    home page, https redirect URIs (http only on the loopback, RFC 8252), the authorization
    code grant with `code` responses, a confidential client (`client_secret_basic` or
    `_post`), and scopes this host knows. Raises OAuthError (`invalid_redirect_uri`,
    `invalid_client_metadata`)."""
    if not isinstance(body, dict):
        raise OAuthError("invalid_client_metadata", "the registration is a JSON object")
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris) \
            or len(uris) > 10:
        raise OAuthError("invalid_redirect_uri", "redirect_uris: one to ten URIs")
    for uri in uris:
        if len(uri) > 2000 or not _https_or_loopback(uri, loopback_http=True):
            raise OAuthError("invalid_redirect_uri", f"{uri!r}: an https URI without a "
                             "fragment (http only on the loopback)")
    meta: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
            raise OAuthError("invalid_client_metadata", f"{name}: a string of 1 to 200 "
                             "characters")
        if value is not None:
            meta[name] = value
    for name in URI_FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 2000
                                  or not _https_or_loopback(value, loopback_http=True)):
            raise OAuthError("invalid_client_metadata", f"{name}: an https URL")
        if value is not None:
            meta[name] = value
    for name in ("client_name", "client_uri"):
        if name not in meta:
            raise OAuthError("invalid_client_metadata", f"{name} is required")
    contacts = body.get("contacts", [])
    if not isinstance(contacts, list) or len(contacts) > 10 or not all(
            isinstance(c, str) and 0 < len(c) <= 200 for c in contacts):
        raise OAuthError("invalid_client_metadata", "contacts: up to ten strings")
    if contacts:
        meta["contacts"] = contacts
    grants = body.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or "authorization_code" not in grants or any(
            g not in GRANT_TYPES for g in grants):
        raise OAuthError("invalid_client_metadata", "grant_types: authorization_code, and "
                         "refresh_token if wanted")
    responses = body.get("response_types", ["code"])
    if responses != ["code"]:
        raise OAuthError("invalid_client_metadata", 'response_types: ["code"]')
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise OAuthError("invalid_client_metadata", "token_endpoint_auth_method: "
                         "client_secret_basic or client_secret_post")
    scope = body.get("scope")
    if not isinstance(scope, str) or not scope.split():
        raise OAuthError("invalid_client_metadata", "scope: the Open Badges scopes wanted, "
                         "space-separated")
    wanted = list(dict.fromkeys(scope.split()))
    unknown = [s for s in wanted if s not in KNOWN_SCOPES]
    if unknown:
        raise OAuthError("invalid_client_metadata", f"unknown scope {unknown[0]!r}")
    return Registration(meta, list(dict.fromkeys(uris)), wanted, list(dict.fromkeys(grants)),
                        method)


def client_document(client_id: str, issued_at: int, reg: Registration) -> dict[str, Any]:
    """The registration answer without the secret (RFC 7591 §3.2.1)."""
    return {"client_id": client_id, "client_id_issued_at": issued_at,
            "client_secret_expires_at": 0, **reg.metadata,
            "redirect_uris": reg.redirect_uris, "grant_types": reg.grant_types,
            "response_types": ["code"], "token_endpoint_auth_method": reg.auth_method,
            "scope": " ".join(reg.scope)}


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) equals the challenge."""
    if not PKCE_VERIFIER.match(verifier):
        return False
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return hmac.compare_digest(computed.rstrip(b"=").decode(), challenge)


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None
    code_challenge: str


def authorization_request(params: dict[str, str], *, registered_uris: list[str],
                          registered_scope: list[str]) -> AuthorizationRequest:
    """The checks that come after the client and its redirect URI are known (errors from
    here go back to the client's redirect URI): response type, PKCE with S256, scopes."""
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge or method != "S256":
        raise OAuthError("invalid_request", "PKCE is required: code_challenge with "
                         "code_challenge_method=S256")
    if not PKCE_CHALLENGE.match(challenge):
        raise OAuthError("invalid_request", "code_challenge: BASE64URL(SHA256(verifier)), "
                         "43 characters")
    raw = params.get("scope", "")
    wanted = list(dict.fromkeys(raw.split())) if raw else list(registered_scope)
    outside = [s for s in wanted if s not in registered_scope or s not in KNOWN_SCOPES]
    if outside or not [s for s in wanted if s in SCOPES]:
        raise OAuthError("invalid_scope", f"scope {outside[0]!r} is not registered for this "
                         "client" if outside else "ask for at least one Open Badges scope")
    return AuthorizationRequest(params["client_id"], params["redirect_uri"], wanted,
                                params.get("state"), challenge)


def redirect(uri: str, **params: str | None) -> str:
    """The client's redirect URI with the answer's parameters added to its query."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"


def has_scope(granted: list[str], needed: str) -> bool:
    return needed in granted


def page_links(url: str, *, limit: int, offset: int, total: int,
               since: str | None = None) -> str:
    """RFC 8288 `Link` with first, last, and next/prev where they exist (spec §6.4); a
    `since` asked for stays in every link."""
    def at(off: int) -> str:
        query: dict[str, Any] = {"limit": limit, "offset": off}
        if since is not None:
            query["since"] = since
        return f"<{url}?{urlencode(query)}>"
    last = max(0, (total - 1) // limit * limit) if total else 0
    links = []
    if offset + limit < total:
        links.append(f'{at(offset + limit)}; rel="next"')
    links.append(f'{at(last)}; rel="last"')
    links.append(f'{at(0)}; rel="first"')
    if offset > 0:
        links.append(f'{at(max(0, offset - limit))}; rel="prev"')
    return ", ".join(links)


def paging(params: dict[str, str]) -> tuple[int, int]:
    """`limit` (1..100, default 20) and `offset` (0..); ApiError 400 otherwise."""
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
        offset = int(params.get("offset", 0))
    except ValueError as exc:
        raise ApiError(400, "invalid_query_parameter", "limit and offset are integers") \
            from exc
    if not 1 <= limit <= MAX_LIMIT or offset < 0 or offset > 10**9:
        raise ApiError(400, "invalid_query_parameter",
                       f"limit: 1 to {MAX_LIMIT}; offset: 0 or more")
    return limit, offset


def is_open_badge(document: Any) -> bool:
    types = document.get("type") if isinstance(document, dict) else None
    types = types if isinstance(types, list) else [types]
    return "VerifiableCredential" in types and bool(
        {"OpenBadgeCredential", "AchievementCredential"} & set(types))


def profile_update(current: dict[str, Any], body: Any, profile_id: str) -> dict[str, Any]:
    """The profile fields after `putProfile`: a Profile whose own `id` (if given) is this
    profile's; the fields it carries replace the stored ones (absent: removed)."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_data", "the body is a Profile (a JSON object)")
    if body.get("id") not in (None, profile_id):
        raise ApiError(400, "invalid_data", f"this profile's id is {profile_id}")
    types = body.get("type", "Profile")
    if "Profile" not in (types if isinstance(types, list) else [types]):
        raise ApiError(400, "invalid_data", "type: Profile")
    out: dict[str, Any] = {}
    for name in PROFILE_TEXT:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 500:
            raise ApiError(400, "invalid_data", f"{name}: a string of at most 500 characters")
        out[name] = value
    for name in PROFILE_URLS:
        value = body.get(name)
        if isinstance(value, dict) and name == "image":
            value = value.get("id")
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 2000 or not _https_or_loopback(
                value, loopback_http=False):
            raise ApiError(400, "invalid_data", f"{name}: an https URL")
        out[name] = value
    del current  # replaced, not merged: PUT
    return out


def profile_document(profile_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"@context": [OB_V3_URL], "type": "Profile", "id": profile_id}
    for name, value in fields.items():
        doc[name] = {"id": value, "type": "Image"} if name == "image" else value
    return doc


def since(value: str) -> datetime:
    """getCredentials' `since`: an RFC 3339 date-time with its offset."""
    if not RFC3339.fullmatch(value):
        raise ApiError(400, "invalid_query_parameter", "since: an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise ApiError(400, "invalid_query_parameter", "since: an RFC 3339 date-time") \
            from exc

