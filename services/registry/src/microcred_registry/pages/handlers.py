"""Server-rendered pages for people: the credential page (English and French, with the live
verification result) at the credential's own URL, share-link pages `/c/{token}`, the public
profile `/p/{slug}`, and the learner's own pages (the list at `/learner`, and each
credential as its holder sees it). The same URLs give the signed JSON to a client that asks
for JSON (microcred_registry.pages.routes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.credentials import handlers as credentials
from microcred_registry.credentials import linkedin
from microcred_registry.credentials.domain import VC_JSON, credential_url
from microcred_registry.pages.domain import listed, present
from microcred_registry.pages.i18n import translator
from microcred_registry.pages.owner_view import owner_view
from microcred_registry.pages.rendering import (
    KNOWN_CHECKS,
    language,
    message,
    render,
    wants_json_page,
    with_image_origin,
)
from microcred_registry.trust import handlers as trust
from microcred_registry.verification.handlers import verify_document
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import VISIBILITIES, Session, Viewer
from microcred_registry.wallet.signin import SignIn
from microcred_shared.problems import Problem


def drawn_badge_url(base: str, row: Any) -> str:
    """The badge drawn for the credential's definition version (credentials issued before
    achievements carried an image, or issued without one); "" without a definition."""
    if not row.definition_id or not row.definition_version:
        return ""
    return f"{base}/badges/{row.definition_id}/v{row.definition_version}.svg"


def actions(base: str, row: Any, lang: str, *, holder: bool) -> dict[str, Any]:
    """What a reader may do with a credential besides reading it: the baked badge as PNG
    and SVG, and for its holder LinkedIn's "Add to profile" form, pre-filled, and (while
    the credential is active) "Add to a wallet" by either protocol."""
    url = credential_url(base, row.credential_id)
    out: dict[str, Any] = {"id": str(row.credential_id), "json": url + "?format=json",
                           "png": url + "/baked.png", "svg": url + "/baked.svg"}
    if holder:
        out["linkedin"] = linkedin.add_to_profile(dict(row.document), url,
                                                  str(row.credential_id), lang)
        out["wallet"] = row.status == "active"
    return out


class Pages:
    def __init__(self, engine: AsyncEngine, base: str, signin: SignIn, *,
                 reads: AsyncEngine | None = None) -> None:
        self.engine, self.base, self._signin = engine, base, signin
        # The hot reads' engine (microcred_registry.reads); the service's when not given.
        self.reads = reads or engine

    async def page(self, request: Request, row: Any, *, canonical: str, json_url: str,
                   indexable: bool, owner: dict[str, Any] | None = None) -> HTMLResponse:
        doc = dict(row.document)
        # A credential read by its id comes with its stored JSON text (wallet.sharing.Stored).
        verification = await verify_document(self.reads, self.base, doc,
                                             versions=getattr(row, "versions", None),
                                             source=getattr(row, "document_json", None))
        lang = language(request)
        t = translator(lang)
        view = present(doc, verification, lang, t, await self._issuer_reason(row),
                       image_fallback=drawn_badge_url(self.base, row))
        view.registered = await self._registered(doc, getattr(row, "versions", None) or {})
        preview = t("preview", title=view.title, name=view.holder, issuer=view.issuer_name,
                    province=view.province)
        checked = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        # Baked downloads where the reader may fetch them (the holder; anyone when public,
        # which is when the page is indexable); LinkedIn only for the holder.
        acts = actions(self.base, row, lang, holder=owner is not None) \
            if owner is not None or indexable else None
        if acts is not None and owner is not None:
            acts["private"] = owner.get("visibility") != "public"
        return render(request, "credential.html", indexable=indexable, c=view,
                      known_checks=KNOWN_CHECKS,
                      preview=preview, canonical=canonical, actions=acts,
                      json_url=json_url, checked_at=checked, owner=owner,
                      headers=with_image_origin(view.image))

    async def owner_page(self, request: Request, row: Any, *, new_link: str | None = None,
                         notice: str | None = None) -> HTMLResponse:
        """The page as its signed-in holder sees it: with who can see it and how to share."""
        async with self.engine.connect() as conn:
            mine = await owner_view(conn, row, self.base, language(request),
                                    new_link=new_link, notice=notice)
        url = credential_url(self.base, row.credential_id)
        # The holder's view is personal (it may show a new share link): never indexed.
        return await self.page(request, row, canonical=url, json_url=url + "?format=json",
                               indexable=False, owner=mine)

    async def _registered(self, doc: dict[str, Any], versions: dict[str, str]) -> bool:
        """Whether the issuer is on the trust list that wallets read (ADR 26)."""
        issuer = doc.get("issuer")
        issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
        if not isinstance(issuer_id, str):
            return False
        return await trust.registered_issuer_at(self.reads, issuer_id, self.base,
                                                versions.get("providers"))

    async def _issuer_reason(self, row: Any) -> str:
        if row.status == "active":
            return ""
        return await credentials.issuer_reason_read(self.reads, row.credential_id)

    async def by_id(self, request: Request, credential_id: uuid.UUID,
                    viewer: Viewer) -> Response:
        """The page at the credential's own URL, for whoever may read the credential (the
        same rule as its JSON, wallet.domain.may_read): its signed-in holder sees the
        holder's view; anyone else without access the same 404 as for no credential."""
        # The credential, who may read it and what its verification needs: one statement.
        row = await sharing.read_by_id(self.reads, credential_id, viewer,
                                       for_verification=True)
        url = credential_url(self.base, credential_id)
        if row is not None:
            if viewer.learner_key == row.learner_key:
                return await self.owner_page(request, row)
            # Only a public page is indexed; the issuer's or an employer's view is not.
            return await self.page(request, row, canonical=url, json_url=url + "?format=json",
                                   indexable=row.visibility == "public")
        return message(request, 404, "not_found.title", "not_found.body", "not_found.owner",
                       link={"href": f"{self.base}/learner", "text": translator(
                           language(request))("signin.title")})

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
            rows = await sharing.public_profile(conn, slug)
        if rows is None:
            return message(request, 404, "not_found.title", "not_found.body")
        lang = language(request)
        t = translator(lang)
        items: list[dict[str, Any]] = []
        for r in rows:
            doc = dict(r.document)
            verification = await verify_document(self.engine, self.base, doc)
            items.append({"view": present(doc, verification, lang, t,
                                          image_fallback=drawn_badge_url(self.base, r)),
                          "url": credential_url(self.base, r.credential_id)})
        name = items[0]["view"].holder if items else ""
        return render(request, "profile.html", indexable=True, items=items, name=name,
                      headers=with_image_origin(*(i["view"].image for i in items)))

    async def home(self, request: Request, session: Session,
                   new_link: str | None = None) -> Response:
        """The learner's own list at `/learner`, with the public profile's address."""
        async with self.engine.begin() as conn:
            rows = await sharing.my_credentials(conn, session.learner_key)
            slug = await sharing.profile_slug(conn, session.learner_key)
        lang = language(request)
        items = []
        for r in rows:
            title, issuer = listed(dict(r.document), lang, r.title)
            items.append({"id": str(r.credential_id), "title": title,
                          "provider": issuer or r.provider_id, "status": r.status,
                          "visibility": r.visibility or "private",
                          "url": credential_url(self.base, r.credential_id),
                          "actions": actions(self.base, r, lang, holder=True)})
        return render(request, "learner.html", items=items, new_link=new_link,
                      profile_url=f"{self.base}/p/{slug}", visibilities=VISIBILITIES)
