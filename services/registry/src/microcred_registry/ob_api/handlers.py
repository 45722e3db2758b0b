"""Use cases of the Open Badges 3.0 API (ADR 30): a host platform registers itself (RFC
7591), a signed-in learner approves it for some scopes, it redeems the code with its PKCE
verifier for an access and a refresh token, and then reads the learner's credentials and
profile, adds credentials to the learner's backpack (verified first) and updates the
profile. Codes are single use and short-lived; a replayed code revokes what it gave."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from microcred_registry.ob_api import domain
from microcred_registry.ob_api.domain import ApiError, AuthorizationRequest, OAuthError

# The live verification of a credential document: {"verified", "status", "problems", ...}.
Verify = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Lifetimes:
    code: timedelta
    access: timedelta
    refresh: timedelta


@dataclass(frozen=True)
class Access:
    """Who a valid access token acts for."""

    learner_key: str
    client_id: str
    scope: list[str]


class UnknownClient(Exception):
    """The authorization request names no registered client or a redirect URI it did not
    register: the learner is told, the browser is not sent anywhere (RFC 6749 §4.1.2.1)."""


_CLIENT = sa.text("SELECT * FROM ob_clients WHERE client_id = :id")
_NEW_CLIENT = sa.text(
    "INSERT INTO ob_clients (client_id, secret_sha256, client_metadata, redirect_uris, scope, "
    "grant_types, auth_method, created_at) VALUES (:id, :secret, CAST(:meta AS JSONB), "
    "CAST(:uris AS JSONB), CAST(:scope AS JSONB), CAST(:grants AS JSONB), :method, :now)")
_NEW_GRANT = sa.text(
    "INSERT INTO ob_grants (grant_id, client_id, learner_key, scope, redirect_uri, "
    "code_sha256, code_challenge, code_expires_at, created_at) VALUES (:id, :client, "
    ":learner, CAST(:scope AS JSONB), :uri, :code, :challenge, :exp, :now)")
_GRANT_BY_CODE = sa.text("SELECT * FROM ob_grants WHERE code_sha256 = :code FOR UPDATE")
_USE_CODE = sa.text("UPDATE ob_grants SET code_used_at = :now WHERE grant_id = :id")
_REVOKE_GRANT = sa.text(
    "UPDATE ob_grants SET revoked_at = COALESCE(revoked_at, :now) WHERE grant_id = :id")
_REVOKE_GRANT_TOKENS = sa.text(
    "UPDATE ob_tokens SET revoked_at = COALESCE(revoked_at, :now) WHERE grant_id = :id")
_NEW_TOKEN = sa.text(
    "INSERT INTO ob_tokens (token_sha256, kind, grant_id, expires_at, created_at) "
    "VALUES (:token, :kind, :grant, :exp, :now)")
_TOKEN = sa.text(
    "SELECT t.kind, t.grant_id, t.expires_at, t.revoked_at, g.client_id, g.learner_key, "
    "g.scope, g.revoked_at AS grant_revoked FROM ob_tokens t JOIN ob_grants g "
    "USING (grant_id) WHERE t.token_sha256 = :token")
_TOKEN_FOR_UPDATE = sa.text(str(_TOKEN) + " FOR UPDATE OF t")
_REVOKE_TOKEN = sa.text(
    "UPDATE ob_tokens SET revoked_at = COALESCE(revoked_at, :now) WHERE token_sha256 = :token")
_PRUNE = sa.text("DELETE FROM ob_tokens WHERE expires_at < :before")

_LISTING = """
    SELECT document, at, key FROM (
      SELECT document::jsonb, registered_at AS at, credential_id::text AS key FROM credentials
        WHERE learner_key = :learner AND status <> 'revoked' AND registered_at >= :since
      UNION ALL
      SELECT document, updated_at AS at, credential_key AS key FROM ob_backpack
        WHERE learner_key = :learner AND updated_at >= :since) held"""
_PAGE = sa.text(_LISTING + " ORDER BY at, key LIMIT :limit OFFSET :offset")
_COUNT = sa.text(f"SELECT count(*) FROM ({_LISTING}) counted")
# A credential issued here, by its document's `id`: `urn:uuid:<credential_id>` (what
# issuance names every credential it signs) by the primary key, any other id (a VC-API
# caller's own) by `custom_document_id` (registry migration 16).
_OURS = sa.text("SELECT learner_key, status, document FROM credentials "
                "WHERE credential_id = CAST(:cid AS uuid) AND document->>'id' = :id "
                "UNION ALL SELECT learner_key, status, document FROM credentials "
                "WHERE custom_document_id = :id")
_KEPT = sa.text("SELECT document FROM ob_backpack WHERE learner_key = :learner "
                "AND credential_key = :key FOR UPDATE")
_KEEP = sa.text(
    "INSERT INTO ob_backpack (learner_key, credential_key, issuer_id, document, created_at, "
    "updated_at) VALUES (:learner, :key, :issuer, CAST(:doc AS JSONB), :now, :now) "
    "ON CONFLICT (learner_key, credential_key) DO UPDATE SET issuer_id = EXCLUDED.issuer_id, "
    "document = EXCLUDED.document, updated_at = EXCLUDED.updated_at")
_PROFILE = sa.text("SELECT profile_id, fields FROM ob_profiles WHERE learner_key = :learner")
_NEW_PROFILE = sa.text(
    "INSERT INTO ob_profiles (learner_key, profile_id, fields, updated_at) VALUES "
    "(:learner, :id, CAST(:fields AS JSONB), :now) ON CONFLICT (learner_key) DO NOTHING")
_SET_PROFILE = sa.text("UPDATE ob_profiles SET fields = CAST(:fields AS JSONB), "
                       "updated_at = :now WHERE learner_key = :learner")
_NAME = sa.text("SELECT document->'credentialSubject'->>'name' FROM credentials "
                "WHERE learner_key = :learner "
                "AND document->'credentialSubject'->>'name' IS NOT NULL "
                "ORDER BY registered_at DESC LIMIT 1")
_CONNECTIONS = sa.text(
    "SELECT g.grant_id, g.client_id, g.scope, g.created_at, c.client_metadata, "
    "max(t.created_at) AS last_token FROM ob_grants g "
    "JOIN ob_clients c USING (client_id) "
    "JOIN ob_tokens t ON t.grant_id = g.grant_id AND t.revoked_at IS NULL "
    "AND t.expires_at > :now "
    "WHERE g.learner_key = :learner AND g.revoked_at IS NULL "
    "GROUP BY g.grant_id, c.client_metadata ORDER BY g.created_at")
_MY_GRANT = sa.text("SELECT grant_id FROM ob_grants WHERE grant_id = :id "
                    "AND learner_key = :learner AND revoked_at IS NULL")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _json(value: Any) -> str:
    return json.dumps(value)


async def _revoke_grant(conn: AsyncConnection, grant_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(_REVOKE_GRANT, {"id": grant_id, "now": now})
    await conn.execute(_REVOKE_GRANT_TOKENS, {"id": grant_id, "now": now})


def client_credentials(authorization: str | None, form: dict[str, str]) -> tuple[str, str,
                                                                                 bool]:
    """(client_id, client_secret, by Basic header) from `Authorization: Basic` (RFC 6749
    §2.3.1: form-urlencoded id and secret) or the form body; OAuthError otherwise."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and value:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "one client authentication method at a time")
        try:
            pair = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
        client_id, sep, secret = pair.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401)
        return unquote(client_id), unquote(secret), True
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"], False
    raise OAuthError("invalid_client", "client authentication is required (HTTP Basic with "
                     "the client_id and client_secret)", 401)


def _urn_uuid(key: str) -> str | None:
    """The UUID of a `urn:uuid:` id as PostgreSQL writes it (lower case), else None."""
    if not key.startswith("urn:uuid:"):
        return None
    try:
        text = str(uuid.UUID(key[9:]))
    except ValueError:
        return None
    return text if text == key[9:] else None


@dataclass(frozen=True)
class ObApi:
    engine: AsyncEngine
    base_url: str
    lifetimes: Lifetimes

    # --- registration and the authorization server --------------------------------

    async def register(self, body: Any) -> dict[str, Any]:
        reg = domain.registration(body)
        client_id, secret, now = domain.new_client_id(), domain.new_secret(), datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(_NEW_CLIENT, {
                "id": client_id, "secret": domain.digest(secret), "meta": _json(reg.metadata),
                "uris": _json(reg.redirect_uris), "scope": _json(reg.scope),
                "grants": _json(reg.grant_types), "method": reg.auth_method, "now": now})
        return {**domain.client_document(client_id, int(now.timestamp()), reg),
                "client_secret": secret}

    async def client(self, client_id: str | None) -> Any:
        if not client_id:
            return None
        async with self.engine.connect() as conn:
            return (await conn.execute(_CLIENT, {"id": client_id})).mappings().first()

    async def authorization(self, params: dict[str, str]) -> tuple[Any, AuthorizationRequest]:
        """The client and the checked request. UnknownClient when the client or redirect URI
        cannot be trusted; OAuthError for what goes back to the (now trusted) redirect URI."""
        client = await self.client(params.get("client_id"))
        if client is None:
            raise UnknownClient("no client is registered by that client_id")
        uri = params.get("redirect_uri")
        if uri is None and len(client["redirect_uris"]) == 1:
            uri = params["redirect_uri"] = client["redirect_uris"][0]
        if uri not in client["redirect_uris"]:
            raise UnknownClient("the redirect_uri is not one the client registered")
        return client, domain.authorization_request(
            params, registered_uris=client["redirect_uris"], registered_scope=client["scope"])

    async def approve(self, learner_key: str, request: AuthorizationRequest) -> str:
        """The learner said yes: a single-use authorization code for exactly this request."""
        code, now = domain.new_secret(), datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(_NEW_GRANT, {
                "id": uuid.uuid4(), "client": request.client_id, "learner": learner_key,
                "scope": _json(request.scope), "uri": request.redirect_uri,
                "code": domain.digest(code), "challenge": request.code_challenge,
                "exp": now + self.lifetimes.code, "now": now})
        return code

    async def _authenticated(self, conn: AsyncConnection, authorization: str | None,
                             form: dict[str, str]) -> Any:
        client_id, secret, _ = client_credentials(authorization, form)
        client = (await conn.execute(_CLIENT, {"id": client_id})).mappings().first()
        if client is None or not hmac.compare_digest(domain.digest(secret),
                                                     client["secret_sha256"]):
            raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
        if form.get("client_id") not in (None, client_id):
            raise OAuthError("invalid_request", "client_id does not match the authenticated "
                             "client")
        return client

    async def token(self, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type not in domain.GRANT_TYPES:
            raise OAuthError("unsupported_grant_type", "grant_type: authorization_code or "
                             "refresh_token")
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            client = await self._authenticated(conn, authorization, form)
            if grant_type not in client["grant_types"]:
                raise OAuthError("unauthorized_client", f"this client did not register the "
                                 f"{grant_type} grant")
            if grant_type == "authorization_code":
                granted = await self._redeem_code(conn, client, form, now)
            else:
                granted = await self._refresh(conn, client, form, now)
            if not isinstance(granted, OAuthError):
                return await self._tokens(conn, client, *granted, now)
        # A replay: the grant's revocation is committed, then the client is refused.
        raise granted

    async def _redeem_code(self, conn: AsyncConnection, client: Any, form: dict[str, str],
                           now: datetime) -> tuple[uuid.UUID, list[str]] | OAuthError:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code or not form.get("redirect_uri"):
            raise OAuthError("invalid_request", "code and redirect_uri are required")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
        grant = (await conn.execute(_GRANT_BY_CODE, {
            "code": domain.digest(code)})).mappings().first()
        if grant is None or grant["client_id"] != client["client_id"]:
            raise OAuthError("invalid_grant", "the authorization code is unknown or was issued "
                             "to another client")
        if grant["code_used_at"] is not None or grant["revoked_at"] is not None:
            # A replayed code: whatever it gave is revoked (RFC 6749 §4.1.2); returned, not
            # raised, so that the revocation commits.
            await _revoke_grant(conn, grant["grant_id"], now)
            return OAuthError("invalid_grant", "the authorization code was already used; the "
                             "tokens issued for it are revoked")
        if grant["code_expires_at"] <= now:
            raise OAuthError("invalid_grant", "the authorization code has expired")
        if form["redirect_uri"] != grant["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri is not the one of the "
                             "authorization request")
        if not domain.pkce_matches(verifier, grant["code_challenge"]):
            raise OAuthError("invalid_grant", "the code_verifier does not match the "
                             "code_challenge (PKCE, S256)")
        await conn.execute(_USE_CODE, {"id": grant["grant_id"], "now": now})
        return grant["grant_id"], self._narrowed(form, list(grant["scope"]))

    @staticmethod
    def _narrowed(form: dict[str, str], granted: list[str]) -> list[str]:
        """A token request's `scope` may narrow what was granted, never widen it."""
        asked = form.get("scope")
        if not asked:
            return granted
        wanted = list(dict.fromkeys(asked.split()))
        beyond = [s for s in wanted if s not in granted]
        if beyond:
            raise OAuthError("invalid_scope", f"{beyond[0]!r} was not granted")
        return wanted

    async def _refresh(self, conn: AsyncConnection, client: Any, form: dict[str, str],
                       now: datetime) -> tuple[uuid.UUID, list[str]] | OAuthError:
        presented = form.get("refresh_token")
        if not presented:
            raise OAuthError("invalid_request", "refresh_token is required")
        row = (await conn.execute(_TOKEN_FOR_UPDATE, {
            "token": domain.digest(presented)})).mappings().first()
        if row is None or row["kind"] != "refresh" or row["client_id"] != client["client_id"]:
            raise OAuthError("invalid_grant", "the refresh token is unknown or was issued to "
                             "another client")
        if row["revoked_at"] is not None and row["grant_revoked"] is None:
            # A rotated-out refresh token used again: someone holds a copy. End the grant.
            await _revoke_grant(conn, row["grant_id"], now)
            return OAuthError("invalid_grant", "the refresh token was already used; the grant "
                             "is revoked")
        if row["revoked_at"] is not None or row["grant_revoked"] is not None \
                or row["expires_at"] <= now:
            raise OAuthError("invalid_grant", "the refresh token is revoked or expired")
        await conn.execute(_REVOKE_TOKEN, {"token": domain.digest(presented), "now": now})
        return row["grant_id"], self._narrowed(form, list(row["scope"]))

    async def _tokens(self, conn: AsyncConnection, client: Any, grant_id: uuid.UUID,
                      scope: list[str], now: datetime) -> dict[str, Any]:
        access = domain.new_secret()
        await conn.execute(_PRUNE, {"before": now - timedelta(days=1)})
        await conn.execute(_NEW_TOKEN, {"token": domain.digest(access), "kind": "access",
                                        "grant": grant_id, "exp": now + self.lifetimes.access,
                                        "now": now})
        out: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                               "expires_in": int(self.lifetimes.access.total_seconds()),
                               "scope": " ".join(scope)}
        if "refresh_token" in client["grant_types"]:
            refresh = domain.new_secret()
            await conn.execute(_NEW_TOKEN, {
                "token": domain.digest(refresh), "kind": "refresh", "grant": grant_id,
                "exp": now + self.lifetimes.refresh, "now": now})
            out["refresh_token"] = refresh
        return out

    async def revoke(self, authorization: str | None, form: dict[str, str]) -> None:
        """RFC 7009: the client's own token ends (a refresh token ends its whole grant); an
        unknown token is no error."""
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            client = await self._authenticated(conn, authorization, form)
            row = (await conn.execute(_TOKEN, {"token": domain.digest(token)})).mappings().first()
            if row is None or row["client_id"] != client["client_id"]:
                return
            if row["kind"] == "refresh":
                await _revoke_grant(conn, row["grant_id"], now)
            else:
                await conn.execute(_REVOKE_TOKEN, {"token": domain.digest(token), "now": now})

    # --- the learner's own view of the platforms they approved ---------------------

    async def connections(self, learner_key: str) -> list[dict[str, Any]]:
        """The platforms holding a live token for the learner, with what they may do."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_CONNECTIONS, {"learner": learner_key,
                                                      "now": datetime.now(UTC)})).all()
        return [{"id": str(r.grant_id), "client_id": r.client_id,
                 "client_name": r.client_metadata.get("client_name"),
                 "client_uri": r.client_metadata.get("client_uri"),
                 "scope": " ".join(r.scope), "approved_at": r.created_at.isoformat(),
                 "last_token_at": r.last_token.isoformat()} for r in rows]

    async def disconnect(self, learner_key: str, grant_id: uuid.UUID) -> bool:
        """The learner withdraws a platform's access: every token of that grant ends.
        False when there is no such live grant of theirs."""
        async with self.engine.begin() as conn:
            found = (await conn.execute(_MY_GRANT, {"id": grant_id, "learner": learner_key})
                     ).first()
            if found is None:
                return False
            await _revoke_grant(conn, grant_id, datetime.now(UTC))
        return True

    # --- the resource server ----------------------------------------------------------

    async def access(self, authorization: str | None, needed: str) -> Access:
        """The learner and client a bearer access token acts for, if it carries `needed`:
        401 (invalid_token) or 403 (insufficient_scope) as RFC 6750 §3.1 says."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorizedrequest", "an access token is required",
                           {"WWW-Authenticate": 'Bearer realm="ob"'})
        async with self.engine.connect() as conn:
            row = (await conn.execute(_TOKEN, {"token": domain.digest(token.strip())})
                   ).mappings().first()
        if row is None or row["kind"] != "access" or row["revoked_at"] is not None \
                or row["grant_revoked"] is not None or row["expires_at"] <= datetime.now(UTC):
            raise ApiError(401, "unauthorizedrequest", "the access token is unknown, revoked "
                           "or expired", {"WWW-Authenticate": 'Bearer realm="ob", '
                                          'error="invalid_token"'})
        if not domain.has_scope(row["scope"], needed):
            raise ApiError(403, "forbidden", f"this operation needs the scope {needed}", {
                "WWW-Authenticate": f'Bearer realm="ob", error="insufficient_scope", '
                                    f'scope="{needed}"'})
        return Access(row["learner_key"], row["client_id"], list(row["scope"]))

    async def credentials(self, learner_key: str, limit: int, offset: int,
                          since: datetime | None) -> tuple[list[dict[str, Any]], int]:
        """The learner's credentials, oldest first: those issued here (not revoked) and the
        ones kept in the backpack; and how many there are in all."""
        params = {"learner": learner_key, "since": since or EPOCH}
        async with self.engine.connect() as conn:
            total = (await conn.execute(_COUNT, params)).scalar_one()
            rows = (await conn.execute(_PAGE, {**params, "limit": limit, "offset": offset})
                    ).all()
        return [dict(r.document) for r in rows], int(total)

    async def upsert(self, learner_key: str, document: Any,
                     verify: Verify) -> tuple[bool, dict[str, Any]]:
        """(created, the credential as held). A credential must verify before it is kept;
        one issued here is already the holder's (200) or someone else's (403)."""
        if not domain.is_open_badge(document):
            raise ApiError(400, "invalid_data", "the body is an OpenBadgeCredential "
                           "(type VerifiableCredential and OpenBadgeCredential)")
        key = document.get("id")
        if not isinstance(key, str) or not 0 < len(key) <= 2000:
            raise ApiError(400, "invalid_data", "the credential needs an id")
        if "proof" not in document:
            raise ApiError(400, "invalid_data", "the credential has no proof; only "
                           "credentials with an embedded Data Integrity proof are accepted")
        result = await verify(document)
        if not result["verified"]:
            said = "; ".join(result.get("problems") or []) or result["status"]
            raise ApiError(400, "invalid_data", f"the credential does not verify "
                           f"({result['status']}): {said}")
        issuer = document.get("issuer")
        issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            ours = (await conn.execute(_OURS, {"id": key, "cid": _urn_uuid(key)})).first()
            if ours is not None:
                if ours.learner_key != learner_key:
                    raise ApiError(403, "forbidden", "this credential was issued here to "
                                   "someone else")
                return False, dict(ours.document)
            kept = (await conn.execute(_KEPT, {"learner": learner_key, "key": key})).first()
            await conn.execute(_KEEP, {"learner": learner_key, "key": key,
                                       "issuer": str(issuer_id), "doc": _json(document),
                                       "now": now})
        return kept is None, document

    async def profile(self, learner_key: str) -> dict[str, Any]:
        async with self.engine.begin() as conn:
            profile_id, fields = await self._profile(conn, learner_key)
        return domain.profile_document(profile_id, fields)

    async def _profile(self, conn: AsyncConnection, learner_key: str,
                       ) -> tuple[str, dict[str, Any]]:
        row = (await conn.execute(_PROFILE, {"learner": learner_key})).first()
        if row is None:
            name = (await conn.execute(_NAME, {"learner": learner_key})).scalar()
            fields = {"name": name} if name else {}
            await conn.execute(_NEW_PROFILE, {
                "learner": learner_key, "id": f"urn:uuid:{uuid.uuid4()}",
                "fields": _json(fields), "now": datetime.now(UTC)})
            row = (await conn.execute(_PROFILE, {"learner": learner_key})).first()
        assert row is not None
        return row.profile_id, dict(row.fields)

    async def put_profile(self, learner_key: str, body: Any) -> dict[str, Any]:
        async with self.engine.begin() as conn:
            profile_id, fields = await self._profile(conn, learner_key)
            fields = domain.profile_update(fields, body, profile_id)
            await conn.execute(_SET_PROFILE, {"learner": learner_key, "fields": _json(fields),
                                              "now": datetime.now(UTC)})
        return domain.profile_document(profile_id, fields)

