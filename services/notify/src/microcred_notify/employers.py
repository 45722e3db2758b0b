"""Employers: registration, operator approval and suspension, and their API keys.

A key is `mce_<key id>.<secret>` (256-bit secret, sha256 at rest, as provider keys in
ADR 5); it is shown once, when the operator approves the employer. Suspension revokes the
employer's keys; a later approval mints a new one."""

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_notify.employer_models import Employer, EmployerApiKey
from microcred_shared.problems import Problem

PREFIX = "mce_"


class EmployerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation: str = Field(min_length=1, max_length=200)
    contact_name: str = Field(min_length=1, max_length=200)
    contact_email: EmailStr
    website: HttpUrl | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(employer_id: str) -> tuple[str, dict[str, Any]]:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = {"key_id": key_id, "employer_id": employer_id, "secret_sha256": _digest(secret),
           "created_at": datetime.now(UTC)}
    return f"{PREFIX}{key_id}.{secret}", row


class EmployerKeyVerifier:
    """Bearer key → approved employer id. Cached briefly; a suspension takes effect within
    `ttl` seconds on every instance."""

    def __init__(self, engine: AsyncEngine, ttl: float = 5.0) -> None:
        self._engine, self._ttl = engine, ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def employer_for(self, token: str) -> str | None:
        if not token.startswith(PREFIX) or "." not in token:
            return None
        key_id, _, secret = token[len(PREFIX):].partition(".")
        digest = _digest(secret)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(
                EmployerApiKey.employer_id, EmployerApiKey.secret_sha256,
            ).join(Employer, Employer.id == EmployerApiKey.employer_id).where(
                EmployerApiKey.key_id == key_id, EmployerApiKey.revoked_at.is_(None),
                Employer.status == "approved"))).first()
        found = row.employer_id if row and hmac.compare_digest(row.secret_sha256,
                                                                digest) else None
        self._cache[digest] = (time.monotonic() + self._ttl, found)
        return found


def employer_dependency(get_verifier: Callable[[], EmployerKeyVerifier]) -> object:
    async def employer(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = await get_verifier().employer_for(token) if scheme.lower() == "bearer" else None
        if not found:
            raise Problem(401, "Unauthorized", "a valid key of an approved employer is "
                          "required (Authorization: Bearer mce_...)", kind="unauthorized",
                          headers={"WWW-Authenticate": "Bearer"})
        return found

    return Annotated[str, Depends(employer)]


def _public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "organisation": row.organisation, "contact_name": row.contact_name,
            "contact_email": row.contact_email, "website": row.website, "status": row.status,
            "created_at": row.created_at.isoformat(),
            "approved_at": row.approved_at.isoformat() if row.approved_at else None}


def routes(app: FastAPI, engine: Callable[[], AsyncEngine], operator: Any) -> None:
    Operator = operator

    @app.post("/v1/employers", status_code=201)
    async def register(body: EmployerCreate) -> dict[str, Any]:
        """An employer asks to join; an operator approves it before it can subscribe."""
        values = {"id": "emp-" + uuid.uuid4().hex[:16], "organisation": body.organisation,
                  "contact_name": body.contact_name, "contact_email": str(body.contact_email),
                  "website": str(body.website) if body.website else None, "status": "pending",
                  "created_at": datetime.now(UTC)}
        async with engine().begin() as conn:
            row = (await conn.execute(sa.insert(Employer).values(values)
                                      .returning(*Employer.__table__.c))).one()  # type: ignore[attr-defined]
        return _public(row)

    @app.get("/v1/admin/employers")
    async def list_employers(_: Operator, status: str | None = None) -> dict[str, Any]:
        query = sa.select(Employer).order_by(Employer.created_at)
        if status:
            query = query.where(Employer.status == status)
        async with engine().connect() as conn:
            rows = (await conn.execute(query)).all()
        return {"employers": [_public(r) for r in rows]}

    @app.post("/v1/admin/employers/{employer_id}/approve")
    async def approve(employer_id: str, _: Operator) -> dict[str, Any]:
        """Approve (or reinstate) an employer; the answer carries its new API key, once."""
        token, key_row = new_key(employer_id)
        async with engine().begin() as conn:
            row = (await conn.execute(sa.update(Employer).where(
                Employer.id == employer_id, Employer.status != "approved").values(
                status="approved", approved_at=datetime.now(UTC), suspended_at=None)
                .returning(*Employer.__table__.c))).first()  # type: ignore[attr-defined]
            if row is None:
                await _exists(conn, employer_id)
                raise Problem(409, "Already approved", f"employer {employer_id} is approved; "
                              "suspend it first to replace its key", kind="conflict")
            await conn.execute(sa.insert(EmployerApiKey).values(key_row))
        return {**_public(row), "api_key": token}

    @app.post("/v1/admin/employers/{employer_id}/suspend")
    async def suspend(employer_id: str, _: Operator) -> dict[str, Any]:
        now = datetime.now(UTC)
        async with engine().begin() as conn:
            row = (await conn.execute(sa.update(Employer).where(Employer.id == employer_id)
                                      .values(status="suspended", suspended_at=now)
                                      .returning(*Employer.__table__.c))).first()  # type: ignore[attr-defined]
            if row is None:
                await _exists(conn, employer_id)
            await conn.execute(sa.update(EmployerApiKey).where(
                EmployerApiKey.employer_id == employer_id,
                EmployerApiKey.revoked_at.is_(None)).values(revoked_at=now))
        return _public(row)


async def _exists(conn: Any, employer_id: str) -> None:
    found = (await conn.execute(sa.select(Employer.id).where(
        Employer.id == employer_id))).first()
    if not found:
        raise Problem(404, "Not found", f"no employer {employer_id}", kind="not-found")
