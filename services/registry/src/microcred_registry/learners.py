"""The learner API: my credentials from every provider, download and export, visibility,
direct shares with employers (by name, from the employer directory), share links, my public
profile. Signed-in learners only (session cookie or `Authorization: Bearer mcl_...`)."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_registry import employer_directory, employer_names, sharing
from microcred_registry.learner_models import CredentialVisibility
from microcred_registry.models import CredentialRecord
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.signin import SESSION_COOKIE, Session, SignIn
from microcred_shared.problems import Problem

VC_JSON = "application/vc+ld+json"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# The session dependency is built per app (it needs the sign-in service), so FastAPI gets it
# from annotations evaluated inside routes(); mypy sees what it resolves to.
if TYPE_CHECKING:
    Learner = Session


class VisibilityChange(BaseModel):
    visibility: Literal["private", "link", "employers", "public"]


class ShareCreate(BaseModel):
    expires_at: datetime | None = Field(None, description="when the link stops working")
    expires_in_days: int | None = Field(None, ge=1, le=3650)


def session_dependency(signin: SignIn, base: str) -> object:
    """Bearer token first, then the session cookie. A cookie-authenticated change must come
    from our own pages: SameSite=Lax already keeps cross-site forms out, the Origin check
    covers the browsers that send one."""
    async def current(request: Request) -> Session:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        from_cookie = not (scheme.lower() == "bearer" and token)
        if from_cookie:
            token = request.cookies.get(SESSION_COOKIE, "")
        session = await signin.session(token)
        if session is None:
            raise Problem(401, "Sign-in required", "sign in with the link we e-mail you "
                          "(POST /v1/learner/sign-in)", kind="unauthorized",
                          headers={"WWW-Authenticate": "Bearer"})
        if from_cookie and not origin_allowed(request, base):
            raise Problem(403, "Cross-site request refused", "another site may not act for a "
                          "signed-in learner", kind="cross-site")
        return session

    return Annotated[Session, Depends(current)]


def origin_allowed(request: Request, base: str) -> bool:
    if request.method in SAFE_METHODS:
        return True
    origin = request.headers.get("origin")
    return origin in (None, "{0.scheme}://{0.netloc}".format(urlsplit(base)),
                      f"{request.url.scheme}://{request.url.netloc}")


async def owned(conn: AsyncConnection, session: Session, credential_id: uuid.UUID) -> Any:
    row = (await conn.execute(sa.select(CredentialRecord).where(
        col(CredentialRecord.credential_id) == credential_id,
        col(CredentialRecord.learner_key) == session.learner_key))).first()
    if row is None:  # someone else's credential looks exactly like a missing one
        raise Problem(404, "Not found", f"you hold no credential {credential_id}",
                      kind="not-found")
    return row


def summary(row: Any, visibility: str, shared_with: list[str], base: str) -> dict[str, Any]:
    cid = row.credential_id
    return {"id": str(cid), "title": row.title, "provider": row.provider_id,
            "status": row.status, "issued_at": row.issued_at.isoformat(),
            "visibility": visibility, "shared_with": shared_with,
            "url": f"{base}/v1/credentials/{cid}",
            "download_url": f"{base}/v1/learner/credentials/{cid}/download"}


async def check_shareable(conn: AsyncConnection, row: Any, employer_id: str) -> None:
    """A new direct share needs an employer an operator approved (in the directory notify
    publishes); sharing again with one already shared with changes nothing."""
    _, shared = await sharing.visibility_of(conn, row.credential_id)
    if employer_id in shared:
        return
    if not employer_names.shareable(await employer_directory.entry(conn, employer_id)):
        raise Problem(404, "Unknown employer", f"no approved employer {employer_id} "
                      "(GET /v1/learner/employers lists those you can share with)",
                      kind="employer-not-found")


async def my_credentials(conn: AsyncConnection, learner_key: str) -> list[Any]:
    return list((await conn.execute(sa.select(
        CredentialRecord, col(CredentialVisibility.visibility),
        col(CredentialVisibility.shared_with),
    ).outerjoin(CredentialVisibility, col(CredentialVisibility.credential_id) ==
                col(CredentialRecord.credential_id)).where(
        col(CredentialRecord.learner_key) == learner_key).order_by(
        col(CredentialRecord.issued_at)))).all())


def routes(app: FastAPI, rt: RegistryRuntime, signin: SignIn) -> None:  # noqa: C901
    base = rt.settings.public_base_url.rstrip("/")
    if not TYPE_CHECKING:
        Learner = session_dependency(signin, base)

    def engine() -> Any:
        assert rt.engine is not None
        return rt.engine

    def published() -> None:
        if rt.relay:
            rt.relay.wake()

    async def state(conn: AsyncConnection, row: Any) -> dict[str, Any]:
        visibility, shared = await sharing.visibility_of(conn, row.credential_id)
        return summary(row, visibility, shared, base)

    @app.get("/v1/learner/credentials")
    async def list_mine(session: Learner) -> dict[str, Any]:
        async with engine().connect() as conn:
            rows = await my_credentials(conn, session.learner_key)
        return {"count": len(rows), "credentials": [
            summary(r, r.visibility or "private", list(r.shared_with or []), base)
            for r in rows]}

    @app.get("/v1/learner/credentials/export")
    async def export_all(session: Learner) -> Response:
        async with engine().connect() as conn:
            rows = await my_credentials(conn, session.learner_key)
        now = datetime.now(UTC)
        bundle = {"type": "MicrocredCredentialExport", "exported_at": now.isoformat(),
                  "count": len(rows), "credentials": [dict(r.document) for r in rows]}
        name = f"microcred-credentials-{now:%Y%m%d}.json"
        return Response(json.dumps(bundle, ensure_ascii=False, indent=2),
                        media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/v1/learner/credentials/{credential_id}")
    async def one(credential_id: uuid.UUID, session: Learner) -> dict[str, Any]:
        async with engine().connect() as conn:
            row = await owned(conn, session, credential_id)
            links = await sharing.links_of(conn, credential_id)
            employers = await sharing.employer_shares(conn, credential_id)
            named = await employer_directory.entries(conn, [e for e, _ in employers])
            out = await state(conn, row)
        return {**out, "shares": [sharing.link_json(link, base) for link in links],
                "employer_shares": [employer_names.share_json(e, since, named.get(e))
                                    for e, since in employers],
                "credential": row.document}

    @app.get("/v1/learner/credentials/{credential_id}/download")
    async def download(credential_id: uuid.UUID, session: Learner) -> Response:
        async with engine().connect() as conn:
            row = await owned(conn, session, credential_id)
        return JSONResponse(dict(row.document), media_type=VC_JSON, headers={
            "Content-Disposition": f'attachment; filename="credential-{credential_id}.json"'})

    @app.put("/v1/learner/credentials/{credential_id}/visibility")
    async def set_visibility(credential_id: uuid.UUID, body: VisibilityChange,
                             session: Learner) -> dict[str, Any]:
        async with engine().begin() as conn:
            row = await owned(conn, session, credential_id)
            await sharing.change(conn, row, visibility=body.visibility)
            out = await state(conn, row)
        published()
        return out

    @app.put("/v1/learner/credentials/{credential_id}/employers/{employer_id}")
    async def share_with_employer(credential_id: uuid.UUID, employer_id: str,
                                  session: Learner) -> dict[str, Any]:
        return await _employer(credential_id, employer_id, session, share=True)

    @app.delete("/v1/learner/credentials/{credential_id}/employers/{employer_id}")
    async def unshare_employer(credential_id: uuid.UUID, employer_id: str,
                               session: Learner) -> dict[str, Any]:
        return await _employer(credential_id, employer_id, session, share=False)

    async def _employer(credential_id: uuid.UUID, employer_id: str, session: Session, *,
                        share: bool) -> dict[str, Any]:
        if not sharing.EMPLOYER_ID.match(employer_id):
            raise Problem(400, "Invalid employer id", "an employer id is 2-64 characters of "
                          "a-z, 0-9 and -", kind="invalid-request")
        async with engine().begin() as conn:
            row = await owned(conn, session, credential_id)
            if share:  # stopping a share always works, whatever became of the employer
                await check_shareable(conn, row, employer_id)
            await sharing.change(conn, row, share_with=employer_id if share else None,
                                 unshare=None if share else employer_id)
            out = await state(conn, row)
        published()
        return out

    @app.post("/v1/learner/credentials/{credential_id}/shares", status_code=201)
    async def create_share(credential_id: uuid.UUID, body: ShareCreate,
                           session: Learner) -> dict[str, Any]:
        return await new_share(credential_id, body, session)

    async def new_share(credential_id: uuid.UUID, body: ShareCreate,
                        session: Session) -> dict[str, Any]:
        now = datetime.now(UTC)
        expires = body.expires_at or (now + timedelta(days=body.expires_in_days)
                                      if body.expires_in_days else None)
        if expires is not None and (expires.tzinfo is None or expires <= now):
            raise Problem(400, "Invalid expiry", "expires_at must be a future time with a "
                          "time zone", kind="invalid-request")
        async with engine().begin() as conn:
            row = await owned(conn, session, credential_id)
            # Making a link is asking for it to work: a private credential opens to links.
            link, token = await sharing.open_link(conn, row, expires)
            out = await state(conn, row)
        published()
        return {**sharing.link_json(link, base, token), "visibility": out["visibility"]}

    @app.get("/v1/learner/credentials/{credential_id}/shares")
    async def list_shares(credential_id: uuid.UUID, session: Learner) -> dict[str, Any]:
        async with engine().connect() as conn:
            await owned(conn, session, credential_id)
            links = await sharing.links_of(conn, credential_id)
        return {"shares": [sharing.link_json(link, base) for link in links]}

    @app.delete("/v1/learner/credentials/{credential_id}/shares/{share_id}", status_code=204)
    async def revoke_share(credential_id: uuid.UUID, share_id: uuid.UUID,
                           session: Learner) -> Response:
        async with engine().begin() as conn:
            await owned(conn, session, credential_id)
            if not await sharing.revoke_link(conn, credential_id, share_id):
                raise Problem(404, "Not found", f"no active share link {share_id}",
                              kind="not-found")
        return Response(status_code=204)

    @app.get("/v1/learner/employers")
    async def employers(_: Learner) -> dict[str, Any]:
        """The employers a learner can share a credential with directly, by name."""
        async with engine().connect() as conn:
            rows = await employer_directory.shareable_employers(conn)
        return {"employers": [{"id": r.employer_id, "name": r.organisation,
                               "website": r.website} for r in rows]}

    @app.get("/v1/learner/profile")
    async def profile(session: Learner) -> dict[str, Any]:
        async with engine().begin() as conn:
            slug = await sharing.profile_slug(conn, session.learner_key)
        return {"url": f"{base}/p/{slug}", "shows": "credentials whose visibility is public"}
