"""Who may see a credential, in the database: its visibility, direct shares with employers,
share links and the learner's public profile. Each change of visibility or direct shares is
announced as `CredentialVisibilityChanged` through the outbox, in the transaction that makes
it. The levels themselves are pure rules (microcred_registry.wallet.domain)."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry import reads
from microcred_registry.credentials.handlers import VERIFICATION_VERSIONS
from microcred_registry.credentials.models import CredentialRecord
from microcred_registry.wallet.domain import (
    Viewer,
    links_work,
    may_read,
    reaches_employers,
    wider,
)
from microcred_registry.wallet.models import CredentialVisibility, LearnerProfile, ShareLink
from microcred_shared import outbox
from microcred_shared.auth import digest
from microcred_shared.contract import topics
from microcred_shared.contract.events_learners import CredentialVisibilityChanged
from microcred_shared.db import table_of
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of

SOURCE = "/microcred/registry"


async def owned(conn: AsyncConnection, learner_key: str, credential_id: uuid.UUID) -> Any:
    """The learner's own credential; someone else's looks exactly like a missing one."""
    row = (await conn.execute(sa.select(CredentialRecord).where(
        col(CredentialRecord.credential_id) == credential_id,
        col(CredentialRecord.learner_key) == learner_key))).first()
    if row is None:
        raise Problem(404, "Not found", f"you hold no credential {credential_id}",
                      kind="not-found")
    return row


async def readable(conn: AsyncConnection, credential_id: uuid.UUID,
                   viewer: Viewer) -> tuple[Any, str] | None:
    """The credential and its visibility when `viewer` may read it by its id; None when
    there is no such credential or the viewer may not read it (the two look alike, so that
    a private credential's existence is not told)."""
    # One statement for the credential and who may see it (every read by id starts here).
    row: Any = (await conn.execute(sa.select(
        CredentialRecord, col(CredentialVisibility.visibility).label("visibility_"),
        col(CredentialVisibility.shared_with).label("shared_with_"),
    ).outerjoin(CredentialVisibility, col(CredentialVisibility.credential_id) ==
                col(CredentialRecord.credential_id)).where(
        col(CredentialRecord.credential_id) == credential_id))).first()
    if row is None:
        return None
    visibility = row.visibility_ or "private"
    shared = list(row.shared_with_ or []) if row.visibility_ is not None else []
    if not may_read(viewer, holder=row.learner_key, issuer=row.provider_id,
                    visibility=visibility, shared_with=shared):
        return None
    return row, visibility


@dataclass(frozen=True)
class Stored:
    """A credential read by its id, with who may see it: the stored document as its JSON
    text (served as it is) and, parsed on first use, as a dict; for a verification also
    `versions`, the current version of each document it needs (microcred_registry.
    credentials.handlers.VERIFICATION_VERSIONS)."""

    credential_id: uuid.UUID
    learner_key: str
    provider_id: str
    definition_id: str | None
    definition_version: int | None
    title: str
    status: str
    issued_at: datetime
    document_json: str
    visibility: str
    shared_with: list[str]
    versions: dict[str, str]

    @cached_property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.document_json))


_BY_ID = (
    "SELECT c.credential_id, c.learner_key, c.provider_id, c.definition_id, "
    "c.definition_version, c.title, c.status, c.issued_at, c.document::text AS document_json, "
    "v.visibility, v.shared_with::text AS shared_with{versions} "
    "FROM credentials c LEFT JOIN credential_visibility v ON v.credential_id = c.credential_id "
    "WHERE c.credential_id = $1")
_READ = _BY_ID.format(versions="")
_VERIFY = _BY_ID.format(versions=", " + VERIFICATION_VERSIONS)


async def read_by_id(engine: AsyncEngine, credential_id: uuid.UUID, viewer: Viewer, *,
                     for_verification: bool = False) -> Stored | None:
    """`readable` in one statement, one round trip on the registry's read engine
    (microcred_registry.reads): the credential, who may see it and, `for_verification`,
    the versions of the issuer and status lists its verification needs."""
    row = await reads.fetchrow(engine, _VERIFY if for_verification else _READ, credential_id)
    if row is None:
        return None
    visibility = row["visibility"] or "private"
    shared = list(json.loads(row["shared_with"])) if row["visibility"] is not None else []
    if not may_read(viewer, holder=row["learner_key"], issuer=row["provider_id"],
                    visibility=visibility, shared_with=shared):
        return None
    versions = json.loads(row["versions"]) if for_verification else {}
    return Stored(
        credential_id=uuid.UUID(str(row["credential_id"])), learner_key=row["learner_key"],
        provider_id=row["provider_id"], definition_id=row["definition_id"],
        definition_version=row["definition_version"], title=row["title"],
        status=row["status"], issued_at=row["issued_at"], document_json=row["document_json"],
        visibility=visibility, shared_with=shared, versions=versions)


async def my_credentials(conn: AsyncConnection, learner_key: str) -> list[Any]:
    """The learner's credentials, oldest first, each with its visibility and direct shares
    (None for a credential never changed: private, shared with nobody)."""
    return list((await conn.execute(sa.select(
        CredentialRecord, col(CredentialVisibility.visibility),
        col(CredentialVisibility.shared_with),
    ).outerjoin(CredentialVisibility, col(CredentialVisibility.credential_id) ==
                col(CredentialRecord.credential_id)).where(
        col(CredentialRecord.learner_key) == learner_key).order_by(
        col(CredentialRecord.issued_at)))).all())


async def visibility_of(conn: AsyncConnection, credential_id: uuid.UUID) -> tuple[str, list[str]]:
    visibility, shared, _ = await _state(conn, credential_id)
    return visibility, shared


async def _state(conn: AsyncConnection, credential_id: uuid.UUID,
                 ) -> tuple[str, list[str], dict[str, str]]:
    row = (await conn.execute(sa.select(
        col(CredentialVisibility.visibility), col(CredentialVisibility.shared_with),
        col(CredentialVisibility.shared_since)).where(
        col(CredentialVisibility.credential_id) == credential_id))).first()
    if row is None:
        return "private", [], {}
    return row.visibility, list(row.shared_with), dict(row.shared_since or {})


async def employer_shares(conn: AsyncConnection, credential_id: uuid.UUID,
                          ) -> list[tuple[str, datetime | None]]:
    """The direct shares, oldest first, each with when it was made (None for a share made
    before that was recorded)."""
    _, shared, since = await _state(conn, credential_id)
    return [(e, datetime.fromisoformat(since[e]) if e in since else None) for e in shared]


async def change(conn: AsyncConnection, cred: Any, *, visibility: str | None = None,
                 share_with: str | None = None, unshare: str | None = None,
                 ) -> CredentialVisibilityChanged | None:
    """Apply one change; publish the new state if it differs from the old one (with the
    credential's definition and signed document when the new state reaches employers).
    `cred`: the credential's row (`owned`)."""
    old_vis, old_shared, old_since = await _state(conn, cred.credential_id)
    new_vis = visibility or old_vis
    shared = [e for e in old_shared if e != unshare]
    if share_with and share_with not in shared:
        shared.append(share_with)
    if (new_vis, shared) == (old_vis, old_shared):
        return None
    now = datetime.now(UTC)
    # When each direct share began, for the learner's page; not part of the event.
    since = {e: old_since.get(e, now.isoformat()) for e in shared
             if e in old_since or e == share_with}
    table = table_of(CredentialVisibility)
    values = {"credential_id": cred.credential_id, "learner_key": cred.learner_key,
              "visibility": new_vis, "shared_with": shared, "shared_since": since,
              "updated_at": now}
    await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
        index_elements=[table.c.credential_id],
        set_={"visibility": new_vis, "shared_with": shared, "shared_since": since,
              "updated_at": now}))
    # The document goes with a choice that lets some employer see the credential: notify
    # keeps none of a credential nobody may see, and takes it from here (ADR 10).
    exposed = reaches_employers(new_vis, shared)
    event = CredentialVisibilityChanged(
        credential_id=cred.credential_id, learner_key=cred.learner_key,
        provider_id=cred.provider_id, visibility=new_vis,
        shared_with=shared, changed_at=now,
        definition_id=cred.definition_id if exposed else None,
        credential=dict(cred.document) if exposed else None)
    await outbox.write(conn, [outbox.event_record(
        topics.CREDENTIAL_VISIBILITY, event, SOURCE, traceparent=traceparent_of(),
        subject=str(cred.credential_id))])
    return event


async def create_link(conn: AsyncConnection, cred: Any, expires_at: datetime | None,
                      ) -> tuple[SimpleNamespace, str]:
    """A new share link; the token is returned once and kept only as its digest."""
    token = secrets.token_urlsafe(32)
    row = {"id": uuid.uuid4(), "credential_id": cred.credential_id,
           "learner_key": cred.learner_key, "token_sha256": digest(token),
           "created_at": datetime.now(UTC), "expires_at": expires_at}
    await conn.execute(sa.insert(ShareLink).values(**row))
    return SimpleNamespace(**row, revoked_at=None), token


async def open_link(conn: AsyncConnection, cred: Any, expires_at: datetime | None,
                    ) -> tuple[SimpleNamespace, str]:
    """A new share link that works at once: asking for a link means wanting it to work, so
    a private credential opens to links (and that change is published)."""
    link, token = await create_link(conn, cred, expires_at)
    visibility, _ = await visibility_of(conn, cred.credential_id)
    await change(conn, cred, visibility=wider(visibility, "link"))
    return link, token


async def links_of(conn: AsyncConnection, credential_id: uuid.UUID) -> list[sa.Row]:
    return list((await conn.execute(sa.select(ShareLink).where(
        col(ShareLink.credential_id) == credential_id).order_by(col(ShareLink.created_at))
    )).all())


async def revoke_link(conn: AsyncConnection, credential_id: uuid.UUID,
                      share_id: uuid.UUID) -> bool:
    done = (await conn.execute(sa.update(ShareLink).where(
        col(ShareLink.id) == share_id, col(ShareLink.credential_id) == credential_id,
        col(ShareLink.revoked_at).is_(None)).values(revoked_at=datetime.now(UTC)).returning(
        col(ShareLink.id)))).first()
    return done is not None


async def credential_for_link(conn: AsyncConnection, token: str) -> sa.Row | None:
    """The credential a live link opens: not revoked, not expired, and its credential not
    made private since (private withdraws every link without deleting it)."""
    now = datetime.now(UTC)
    row = (await conn.execute(sa.select(CredentialRecord).join(
        ShareLink, col(ShareLink.credential_id) == col(CredentialRecord.credential_id)).where(
        col(ShareLink.token_sha256) == digest(token), col(ShareLink.revoked_at).is_(None),
        sa.or_(col(ShareLink.expires_at).is_(None), col(ShareLink.expires_at) > now)))).first()
    if row is None:
        return None
    visibility, _ = await visibility_of(conn, row.credential_id)
    return row if links_work(visibility) else None


async def profile_slug(conn: AsyncConnection, learner_key: str) -> str:
    table = table_of(LearnerProfile)
    await conn.execute(pg_insert(table).values(
        learner_key=learner_key, slug=secrets.token_urlsafe(12),
        created_at=datetime.now(UTC)).on_conflict_do_nothing())
    return (await conn.execute(sa.select(col(LearnerProfile.slug)).where(
        col(LearnerProfile.learner_key) == learner_key))).scalar_one()


async def public_profile(conn: AsyncConnection, slug: str) -> list[Any] | None:
    """The public credentials of the learner whose profile is `/p/{slug}`, oldest first;
    None when no learner has that profile."""
    key = (await conn.execute(sa.select(col(LearnerProfile.learner_key)).where(
        col(LearnerProfile.slug) == slug))).scalar_one_or_none()
    if key is None:
        return None
    return list((await conn.execute(sa.select(CredentialRecord).join(
        CredentialVisibility, col(CredentialVisibility.credential_id) ==
        col(CredentialRecord.credential_id)).where(
        col(CredentialRecord.learner_key) == key,
        col(CredentialVisibility.visibility) == "public").order_by(
        col(CredentialRecord.issued_at)))).all())
