"""Who is calling: provider API keys and the operator token, with every refusal audited.

The shared dependencies (microcred_shared.auth) answer 401 silently; here a refusal also
leaves an audit record saying which key id was presented and why it failed (never the
secret), so an operator sees a revoked or rotated key still being tried.
"""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from microcred_assessment.audit import handlers as audit
from microcred_shared.auth import PREFIX, ApiKey, KeyVerifier, digest
from microcred_shared.problems import Problem


async def explain(engine: AsyncEngine, token: str | None) -> tuple[str, str | None, str]:
    """(reason, provider the key belongs to, key id) for a key that did not verify."""
    if not token:
        return "no bearer token presented", None, ""
    if not token.startswith(PREFIX) or "." not in token:
        return "not a provider API key", None, ""
    key_id, _, secret = token[len(PREFIX):].partition(".")
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(ApiKey).where(col(ApiKey.key_id) == key_id))).first()
    if row is None:
        return "unknown API key id", None, key_id[:40]
    if not hmac.compare_digest(row.secret_sha256, digest(secret)):
        return f"wrong secret for API key {key_id}", row.provider_id, key_id
    if row.revoked_at is None:
        return f"API key {key_id} was not valid yet when checked", row.provider_id, key_id
    return f"API key {key_id} was revoked at {row.revoked_at.isoformat()}", row.provider_id, \
        key_id


async def provider(engine: AsyncEngine, verifier: KeyVerifier, token: str | None, *,
                   path: str) -> str:
    """The provider the API key belongs to; otherwise audited and 401."""
    found = await verifier.provider_for(token) if token else None
    if found:
        return str(found)
    reason, owner, key_id = await explain(engine, token)
    await audit.record_now(engine, channel="http", actor="unknown", provider_id=owner,
                           action="auth.api-key", reason=reason,
                           details={"path": path, "key_id": key_id})
    raise Problem(401, "Unauthorized", "a valid provider API key is required "
                  "(Authorization: Bearer mcp_...)", kind="unauthorized",
                  headers={"WWW-Authenticate": "Bearer"})


async def operator(engine: AsyncEngine, verifier: KeyVerifier, given: str | None,
                   expected: str | None, *, path: str, method: str) -> str:
    """"operator" when `given` is the operator token; otherwise audited (naming the
    provider whose key was tried, if any) and 401."""
    if expected and given and hmac.compare_digest(given.encode(), expected.encode()):
        return "operator"
    who = await verifier.provider_for(given) if given else None
    await audit.record_now(
        engine, channel="admin", actor=f"provider:{who}" if who else "unknown",
        provider_id=who, action="auth.operator",
        reason="operator endpoint called without the operator token",
        details={"path": path, "method": method})
    raise Problem(401, "Unauthorized", "an operator token is required",
                  kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})
