"""Who is calling: provider API keys and the operator token, with every refusal audited.

The shared dependencies (microcred_shared.auth) answer 401 silently; here a refusal also
leaves an audit record saying which key id was presented and why it failed (never the
secret), so an operator sees a revoked or rotated key still being tried.
"""

import hmac
from collections.abc import Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlmodel import col

from microcred_assessment import audit
from microcred_assessment.runtime import AssessmentRuntime
from microcred_shared.auth import PREFIX, ApiKey, digest
from microcred_shared.problems import Problem


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def explain(rt: AssessmentRuntime, token: str | None) -> tuple[str, str | None, str]:
    """(reason, provider the key belongs to, key id) for a key that did not verify."""
    if not token:
        return "no bearer token presented", None, ""
    if not token.startswith(PREFIX) or "." not in token:
        return "not a provider API key", None, ""
    key_id, _, secret = token[len(PREFIX):].partition(".")
    assert rt.engine is not None
    async with rt.engine.connect() as conn:
        row = (await conn.execute(sa.select(ApiKey).where(col(ApiKey.key_id) == key_id))).first()
    if row is None:
        return "unknown API key id", None, key_id[:40]
    if not hmac.compare_digest(row.secret_sha256, digest(secret)):
        return f"wrong secret for API key {key_id}", row.provider_id, key_id
    if row.revoked_at is None:
        return f"API key {key_id} was not valid yet when checked", row.provider_id, key_id
    return f"API key {key_id} was revoked at {row.revoked_at.isoformat()}", row.provider_id, \
        key_id


def provider_auth(rt: AssessmentRuntime) -> object:
    async def provider(request: Request) -> str:
        token = bearer(request)
        found = await rt.key_verifier.provider_for(token) if token else None
        if found:
            return str(found)
        reason, owner, key_id = await explain(rt, token)
        assert rt.engine is not None
        await audit.record_now(rt.engine, channel="http", actor="unknown", provider_id=owner,
                               action="auth.api-key", reason=reason,
                               details={"path": request.url.path, "key_id": key_id})
        raise Problem(401, "Unauthorized", "a valid provider API key is required "
                      "(Authorization: Bearer mcp_...)", kind="unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})

    return Annotated[str, Depends(provider)]


def operator_auth(rt: AssessmentRuntime, token: Callable[[], str | None]) -> object:
    async def operator(request: Request) -> str:
        given, expected = bearer(request), token()
        if expected and given and hmac.compare_digest(given.encode(), expected.encode()):
            return "operator"
        who = await rt.key_verifier.provider_for(given) if given else None
        assert rt.engine is not None
        await audit.record_now(
            rt.engine, channel="admin", actor=f"provider:{who}" if who else "unknown",
            provider_id=who, action="auth.operator",
            reason="operator endpoint called without the operator token",
            details={"path": request.url.path, "method": request.method})
        raise Problem(401, "Unauthorized", "an operator token is required",
                      kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})

    return Annotated[str, Depends(operator)]
