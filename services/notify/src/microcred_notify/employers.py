"""Employers: registration, operator approval and suspension, and their API keys.

A key is `mce_<key id>.<secret>` (256-bit secret, sha256 at rest, as provider keys in
ADR 5); it is shown once, when the operator approves the employer. Suspension revokes the
employer's keys; a later approval mints a new one.

Every change of what others may know of an employer (registered, approved, suspended,
renamed) is published as `EmployerPublished` on the compacted employer directory, through
the outbox in the transaction that makes the change: the registry names employers to
learners from it (ADR 9)."""

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.employer_models import Employer, EmployerApiKey
from microcred_shared import outbox, topics
from microcred_shared.db import table_of
from microcred_shared.events_employers import EmployerPublished
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of

# The operator dependency is built per app (it needs the settings) and handed in, so
# FastAPI gets it from annotations evaluated inside routes(); mypy sees what it resolves to.
if TYPE_CHECKING:
    Operator: TypeAlias = None


PREFIX = "mce_"
SOURCE = "/microcred/notify"


class EmployerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation: str = Field(min_length=1, max_length=200)
    contact_name: str = Field(min_length=1, max_length=200)
    contact_email: EmailStr
    website: HttpUrl | None = None


class EmployerRename(BaseModel):
    """An operator's correction of an employer's public name or website."""

    model_config = ConfigDict(extra="forbid")
    organisation: str | None = Field(None, min_length=1, max_length=200)
    website: HttpUrl | None = None


def directory_event(row: Any) -> EmployerPublished:
    """What the directory tells of an employer: its name, status and website only (no
    contact person or address, no keys, no webhook endpoints)."""
    return EmployerPublished(employer_id=row.id, organisation=row.organisation,
                             status=row.status, website=row.website,
                             published_at=datetime.now(UTC))


async def publish(conn: AsyncConnection, row: Any) -> None:
    await outbox.write(conn, [outbox.event_record(
        topics.EMPLOYERS, directory_event(row), SOURCE, traceparent=traceparent_of(),
        subject=row.id)])


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
                col(EmployerApiKey.employer_id), col(EmployerApiKey.secret_sha256),
            ).join(Employer, col(Employer.id) == col(EmployerApiKey.employer_id)).where(
                col(EmployerApiKey.key_id) == key_id, col(EmployerApiKey.revoked_at).is_(None),
                col(Employer.status) == "approved"))).first()
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


def routes(app: FastAPI, engine: Callable[[], AsyncEngine], operator: Any,
           published: Callable[[], None] = lambda: None) -> None:
    """`published` wakes the outbox relay after a change was committed."""
    if not TYPE_CHECKING:
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
                                      .returning(*table_of(Employer).c))).one()
            await publish(conn, row)
        published()
        return _public(row)

    @app.get("/v1/admin/employers")
    async def list_employers(_: Operator, status: str | None = None) -> dict[str, Any]:
        query = sa.select(Employer).order_by(col(Employer.created_at))
        if status:
            query = query.where(col(Employer.status) == status)
        async with engine().connect() as conn:
            rows = (await conn.execute(query)).all()
        return {"employers": [_public(r) for r in rows]}

    @app.post("/v1/admin/employers/{employer_id}/approve")
    async def approve(employer_id: str, _: Operator) -> dict[str, Any]:
        """Approve (or reinstate) an employer; the answer carries its new API key, once."""
        token, key_row = new_key(employer_id)
        async with engine().begin() as conn:
            row = (await conn.execute(sa.update(Employer).where(
                col(Employer.id) == employer_id, col(Employer.status) != "approved").values(
                status="approved", approved_at=datetime.now(UTC), suspended_at=None)
                .returning(*table_of(Employer).c))).first()
            if row is None:
                await _exists(conn, employer_id)
                raise Problem(409, "Already approved", f"employer {employer_id} is approved; "
                              "suspend it first to replace its key", kind="conflict")
            await conn.execute(sa.insert(EmployerApiKey).values(key_row))
            await publish(conn, row)
        published()
        return {**_public(row), "api_key": token}

    @app.post("/v1/admin/employers/{employer_id}/suspend")
    async def suspend(employer_id: str, _: Operator) -> dict[str, Any]:
        now = datetime.now(UTC)
        async with engine().begin() as conn:
            row = (await conn.execute(sa.update(Employer).where(col(Employer.id) == employer_id)
                                      .values(status="suspended", suspended_at=now)
                                      .returning(*table_of(Employer).c))).first()
            if row is None:
                await _exists(conn, employer_id)
            await conn.execute(sa.update(EmployerApiKey).where(
                col(EmployerApiKey.employer_id) == employer_id,
                col(EmployerApiKey.revoked_at).is_(None)).values(revoked_at=now))
            await publish(conn, row)
        published()
        return _public(row)

    @app.patch("/v1/admin/employers/{employer_id}")
    async def rename(employer_id: str, body: EmployerRename, _: Operator) -> dict[str, Any]:
        """Correct an employer's name or website (learners see the new name)."""
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if "website" in changes:
            changes["website"] = str(changes["website"])
        async with engine().begin() as conn:
            if not changes:
                await _exists(conn, employer_id)
                raise Problem(400, "Nothing to change", "give organisation or website",
                              kind="invalid-request")
            row = (await conn.execute(sa.update(Employer).where(col(Employer.id) == employer_id)
                                      .values(**changes)
                                      .returning(*table_of(Employer).c))).first()
            if row is None:
                await _exists(conn, employer_id)
            await publish(conn, row)
        published()
        return _public(row)


async def _exists(conn: Any, employer_id: str) -> None:
    found = (await conn.execute(sa.select(col(Employer.id)).where(
        col(Employer.id) == employer_id))).first()
    if not found:
        raise Problem(404, "Not found", f"no employer {employer_id}", kind="not-found")
