"""Server-rendered pages for people: the credential page (English and French, with the live
verification result), share-link pages `/c/{token}` and the public profile `/p/{slug}`.
The same URLs give the signed JSON to a client that asks for JSON."""

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry import sharing
from microcred_registry.i18n import translator
from microcred_registry.learner_models import CredentialVisibility, LearnerProfile
from microcred_registry.models import CredentialRecord, StatusEvent
from microcred_registry.owner_view import owner_view
from microcred_registry.presenter import present
from microcred_registry.rendering import KNOWN_CHECKS, language, message, render, wants_json_page
from microcred_registry.runtime import RegistryRuntime
from microcred_registry.signin import SESSION_COOKIE, SignIn
from microcred_registry.verification import Resolver, as_json
from microcred_shared.problems import Problem
from microcred_shared.vc.verify import verify_credential

VC_JSON = "application/vc+ld+json"


class CredentialPages:
    def __init__(self, rt: RegistryRuntime, signin: SignIn) -> None:
        self._rt, self._signin = rt, signin
        self.base = rt.settings.public_base_url.rstrip("/")

    @property
    def engine(self) -> AsyncEngine:
        assert self._rt.engine is not None
        return self._rt.engine

    async def page(self, request: Request, row: Any, *, canonical: str, json_url: str,
                   indexable: bool, owner: dict[str, Any] | None = None) -> HTMLResponse:
        doc = dict(row.document)
        verification = as_json(await verify_credential(
            doc, resolve_document=Resolver(self.engine, self.base)))
        lang = language(request)
        t = translator(lang)
        view = present(doc, verification, lang, t, await self._issuer_reason(row))
        preview = t("preview", title=view.title, name=view.holder, issuer=view.issuer_name,
                    province=view.province)
        checked = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return render(request, "credential.html", indexable=indexable, c=view,
                      known_checks=KNOWN_CHECKS,
                      preview=preview, canonical=canonical,
                      json_url=json_url, checked_at=checked, owner=owner)

    async def owner_page(self, request: Request, row: Any, *, new_link: str | None = None,
                         notice: str | None = None) -> HTMLResponse:
        """The page as its signed-in holder sees it: with who can see it and how to share."""
        async with self.engine.connect() as conn:
            mine = await owner_view(conn, row, self.base, language(request),
                                    new_link=new_link, notice=notice)
        url = f"{self.base}/v1/credentials/{row.credential_id}"
        # The holder's view is personal (it may show a new share link): never indexed.
        return await self.page(request, row, canonical=url, json_url=url + "?format=json",
                               indexable=False, owner=mine)

    @staticmethod
    async def credential(conn: AsyncConnection, credential_id: uuid.UUID) -> Any:
        return (await conn.execute(sa.select(CredentialRecord).where(
            col(CredentialRecord.credential_id) == credential_id))).first()

    async def _issuer_reason(self, row: Any) -> str:
        if row.status == "active":
            return ""
        async with self.engine.connect() as conn:
            reason = (await conn.execute(sa.select(col(StatusEvent.reason)).where(
                col(StatusEvent.credential_id) == row.credential_id).order_by(
                col(StatusEvent.id).desc()).limit(1))).scalar_one_or_none()
        return reason or ""

    async def by_id(self, request: Request, credential_id: uuid.UUID) -> Response:
        """The page at the credential's own URL: public credentials for anyone, any
        credential for its signed-in holder; otherwise the same 404 as for no credential."""
        async with self.engine.connect() as conn:
            row = await self.credential(conn, credential_id)
            visibility = (await sharing.visibility_of(conn, credential_id))[0] if row else None
        url = f"{self.base}/v1/credentials/{credential_id}"
        if row is not None and await self._owner(request) == row.learner_key:
            return await self.owner_page(request, row)
        if row is not None and visibility == "public":
            return await self.page(request, row, canonical=url, json_url=url + "?format=json",
                                   indexable=True)
        return message(request, 404, "not_found.title", "not_found.body", "not_found.owner",
                       link={"href": f"{self.base}/learner", "text": translator(
                           language(request))("signin.title")})

    async def _owner(self, request: Request) -> str | None:
        session = await self._signin.session(request.cookies.get(SESSION_COOKIE))
        return session.learner_key if session else None

    async def by_link(self, request: Request, token: str) -> Response:
        async with self.engine.connect() as conn:
            row = await sharing.credential_for_link(conn, token)
        if row is None:
            if wants_json_page(request, default=False):
                raise Problem(410, "Share link not valid", "this share link has expired or "
                              "was withdrawn by its holder", kind="share-link-gone")
            return message(request, 410, "link_gone.title", "link_gone.body")
        if wants_json_page(request, default=False):
            return JSONResponse(dict(row.document), media_type=VC_JSON,
                                headers={"Cache-Control": "no-store", "Vary": "Accept"})
        url = f"{self.base}/c/{token}"
        return await self.page(request, row, canonical=url, json_url=url + "?format=json",
                               indexable=False)

    async def profile(self, request: Request, slug: str) -> Response:
        async with self.engine.connect() as conn:
            key = (await conn.execute(sa.select(col(LearnerProfile.learner_key)).where(
                col(LearnerProfile.slug) == slug))).scalar_one_or_none()
            rows = [] if key is None else (await conn.execute(sa.select(CredentialRecord).join(
                CredentialVisibility, col(CredentialVisibility.credential_id) ==
                col(CredentialRecord.credential_id)).where(
                col(CredentialRecord.learner_key) == key,
                col(CredentialVisibility.visibility) == "public").order_by(
                col(CredentialRecord.issued_at)))).all()
        if key is None:
            return message(request, 404, "not_found.title", "not_found.body")
        lang = language(request)
        t = translator(lang)
        items: list[dict[str, Any]] = []
        for r in rows:
            doc = dict(r.document)
            verification = as_json(await verify_credential(
                doc, resolve_document=Resolver(self.engine, self.base)))
            items.append({"view": present(doc, verification, lang, t),
                          "url": f"{self.base}/v1/credentials/{r.credential_id}"})
        name = items[0]["view"].holder if items else ""
        return render(request, "profile.html", indexable=True, items=items, name=name)


def routes(app: FastAPI, rt: RegistryRuntime, pages: CredentialPages) -> None:
    @app.get("/c/{token}", include_in_schema=False)
    async def shared_credential(token: str, request: Request) -> Response:
        return await pages.by_link(request, token)

    @app.get("/p/{slug}", include_in_schema=False)
    async def public_profile(slug: str, request: Request) -> Response:
        return await pages.profile(request, slug)
