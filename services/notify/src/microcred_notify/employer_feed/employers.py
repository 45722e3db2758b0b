"""Employers: registration, operator approval and suspension, renaming, and their API keys.

A key is shown once, when the operator approves the employer (its format: domain.new_key).
Suspension revokes the employer's keys; a later approval mints a new one.

Every change of what others may know of an employer (registered, approved, suspended,
renamed) is published as `EmployerPublished` on the compacted employer directory, through
the outbox in the transaction that makes the change: the registry names employers to
learners from it (ADR 9). The caller wakes the outbox relay once the use case returns."""

from __future__ import annotations

import hmac
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, HttpUrl
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_notify.employer_feed.domain import directory_event, key_digest, new_key, split_key
from microcred_notify.employer_feed.models import Employer, EmployerApiKey
from microcred_shared import outbox
from microcred_shared.contract import topics
from microcred_shared.contract.events_employers import EmployerApiKeyChanged
from microcred_shared.db import table_of
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of

SOURCE = "/microcred/notify"
EMPLOYERS = table_of(Employer)


def _fits_the_directory(url: HttpUrl) -> HttpUrl:
    # The directory event carries at most 2000 characters (events_employers), counted as
    # the URL is written once normalised (an international host grows in punycode).
    if len(str(url)) > 2000:
        raise ValueError("a website address of at most 2000 characters")
    return url


Website = Annotated[HttpUrl, AfterValidator(_fits_the_directory)]


class EmployerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation: str = Field(min_length=1, max_length=200)
    contact_name: str = Field(min_length=1, max_length=200)
    contact_email: EmailStr
    website: Website | None = None


class EmployerRename(BaseModel):
    """An operator's correction of an employer's public name or website."""

    model_config = ConfigDict(extra="forbid")
    organisation: str | None = Field(None, min_length=1, max_length=200)
    website: Website | None = None


def public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "organisation": row.organisation, "contact_name": row.contact_name,
            "contact_email": row.contact_email, "website": row.website, "status": row.status,
            "created_at": row.created_at.isoformat(),
            "approved_at": row.approved_at.isoformat() if row.approved_at else None}


async def publish(conn: AsyncConnection, row: Any) -> None:
    await outbox.write(conn, [outbox.event_record(
        topics.EMPLOYERS, directory_event(row), SOURCE, traceparent=traceparent_of(),
        subject=row.id)])


async def publish_keys(conn: AsyncConnection, keys: list[Any]) -> None:
    """Each key's digest and state, for the services that authenticate employers (the
    registry: an employer reads the credentials learners share with it, ADR 9)."""
    await outbox.write(conn, [outbox.event_record(
        topics.EMPLOYER_API_KEYS, EmployerApiKeyChanged(
            key_id=k.key_id, employer_id=k.employer_id, secret_sha256=k.secret_sha256,
            created_at=k.created_at, revoked_at=k.revoked_at),
        SOURCE, traceparent=traceparent_of(), subject=k.employer_id) for k in keys])


async def register(engine: AsyncEngine, body: EmployerCreate) -> Any:
    values = {"id": "emp-" + uuid.uuid4().hex[:16], "organisation": body.organisation,
              "contact_name": body.contact_name, "contact_email": str(body.contact_email),
              "website": str(body.website) if body.website else None, "status": "pending",
              "created_at": datetime.now(UTC)}
    async with engine.begin() as conn:
        row = (await conn.execute(sa.insert(Employer).values(values)
                                  .returning(*EMPLOYERS.c))).one()
        await publish(conn, row)
    return row


async def list_employers(engine: AsyncEngine, status: str | None) -> list[Any]:
    query = sa.select(Employer).order_by(col(Employer.created_at))
    if status:
        query = query.where(col(Employer.status) == status)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def approve(engine: AsyncEngine, employer_id: str) -> tuple[Any, str]:
    """Approve (or reinstate) an employer: (its row, its new API key)."""
    token, key_row = new_key(employer_id)
    async with engine.begin() as conn:
        row = (await conn.execute(sa.update(Employer).where(
            col(Employer.id) == employer_id, col(Employer.status) != "approved").values(
            status="approved", approved_at=datetime.now(UTC), suspended_at=None)
            .returning(*EMPLOYERS.c))).first()
        if row is None:
            await _exists(conn, employer_id)
            raise Problem(409, "Already approved", f"employer {employer_id} is approved; "
                          "suspend it first to replace its key", kind="conflict")
        await conn.execute(sa.insert(EmployerApiKey).values(key_row))
        await publish(conn, row)
        await publish_keys(conn, [SimpleNamespace(**key_row, revoked_at=None)])
    return row, token


async def suspend(engine: AsyncEngine, employer_id: str) -> Any:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        row = (await conn.execute(sa.update(Employer).where(col(Employer.id) == employer_id)
                                  .values(status="suspended", suspended_at=now)
                                  .returning(*EMPLOYERS.c))).first()
        if row is None:
            await _exists(conn, employer_id)
        revoked = (await conn.execute(sa.update(EmployerApiKey).where(
            col(EmployerApiKey.employer_id) == employer_id,
            col(EmployerApiKey.revoked_at).is_(None)).values(revoked_at=now).returning(
            *table_of(EmployerApiKey).c))).all()
        await publish(conn, row)
        await publish_keys(conn, list(revoked))
    return row


async def rename(engine: AsyncEngine, employer_id: str, body: EmployerRename) -> Any:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "website" in changes:
        changes["website"] = str(changes["website"])
    async with engine.begin() as conn:
        if not changes:
            await _exists(conn, employer_id)
            raise Problem(400, "Nothing to change", "give organisation or website",
                          kind="invalid-request")
        row = (await conn.execute(sa.update(Employer).where(col(Employer.id) == employer_id)
                                  .values(**changes).returning(*EMPLOYERS.c))).first()
        if row is None:
            await _exists(conn, employer_id)
        await publish(conn, row)
    return row


async def _exists(conn: AsyncConnection, employer_id: str) -> None:
    found = (await conn.execute(sa.select(col(Employer.id)).where(
        col(Employer.id) == employer_id))).first()
    if not found:
        raise Problem(404, "Not found", f"no employer {employer_id}", kind="not-found")


class EmployerKeyVerifier:
    """Bearer key → approved employer id. Cached briefly; a suspension takes effect within
    `ttl` seconds on every instance."""

    def __init__(self, engine: AsyncEngine, ttl: float = 5.0) -> None:
        self._engine, self._ttl = engine, ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def employer_for(self, token: str) -> str | None:
        parts = split_key(token)
        if parts is None:
            return None
        key_id, secret = parts
        digest = key_digest(secret)
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
