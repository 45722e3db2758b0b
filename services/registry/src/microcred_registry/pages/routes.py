"""The credential's own URL (the signed JSON for programs, the page for people), share
links `/c/{token}`, public profiles `/p/{slug}`, and the QR codes of those URLs. Who may
read a credential by its id is one rule for the JSON, the page, the verification and the
QR code (wallet.domain.may_read, ADR 9); anyone else gets the same 404 as for no credential.

A QR code is drawn for a URL its requester may already open: the owner's own credential, a
public page, or a live share link presented by whoever holds it. Share link tokens are kept
only as digests, so a link's QR code can be drawn when it is made (or by the link's holder
at `/c/{token}/qr.svg`), never later from the database."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from microcred_registry.credentials.domain import VC_JSON, credential_url
from microcred_registry.delivery.routes import ExchangeService
from microcred_registry.deps import BaseUrl, CredentialRead, CredentialViewer, Engine, PagesService
from microcred_registry.pages import qr
from microcred_registry.pages.rendering import wants_json_page
from microcred_registry.wallet import sharing
from microcred_shared import problems
from microcred_shared.lean import lean_read
from microcred_shared.problems import Problem

router = APIRouter()

# What a QR download may be kept for: a public page's code by anyone for a few minutes
# (the holder may make it private again); anything else by the requester's browser only.
PUBLIC_CACHE = "public, max-age=300"
PRIVATE_CACHE = "private, no-store"


def svg_file(url: str, name: str, cache: str) -> Response:
    return Response(qr.document(url), media_type=qr.SVG, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": cache,
        "Vary": "Cookie", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def not_found(credential_id: uuid.UUID) -> Problem:
    """No credential, or none this caller may read: the same answer, so a private
    credential's existence is not told."""
    return Problem(404, "Not found", f"no credential {credential_id} you may read",
                   kind="not-found")


# Who may read depends on who asks: a cache must not hand one caller's answer to another.
VARY = "Accept, Authorization, Cookie"


# A LeanReadRoute (microcred_shared.lean): the same route, OpenAPI and answers, served
# without FastAPI's generic dependency solving (issue 12, item 4).
@lean_read(router, "/v1/credentials/{credential_id}", responses={
    **problems.media(200, VC_JSON, "text/html", description="the signed credential, or its "
                     "page for a browser (Accept: text/html)"),
    404: {**problems.response(404, "text/html"),
          "description": "no such credential, or one its holder has not opened to the caller"}})
async def get_credential(credential_id: uuid.UUID, request: Request,
                         read: CredentialRead) -> Response:
    """The credential's own URL. Programs get the signed JSON, people asking for HTML the
    page; both only for who may read it (ADR 9): anyone when the holder made it public;
    always the holder (session), its issuer (provider API key) and the operator; an
    approved employer (employer API key) while it is shared with it or open to employers.
    Share links are read at their own URL, `/c/{token}`."""
    if not wants_json_page(request, default=True):
        return await read.pages().by_id(request, credential_id, read.viewer)
    stored = await sharing.read_by_id(read.reads, credential_id, read.viewer)
    if stored is None:
        raise not_found(credential_id)
    # The stored JSON as PostgreSQL holds it: never parsed and encoded again on the way out.
    return Response(stored.document_json.encode(), media_type=VC_JSON, headers={
        "Vary": VARY,
        "Cache-Control": "no-cache" if stored.visibility == "public" else PRIVATE_CACHE})


@router.get("/v1/credentials/{credential_id}/qr.svg", include_in_schema=False)
async def credential_qr(credential_id: uuid.UUID, engine: Engine, base: BaseUrl,
                        viewer: CredentialViewer) -> Response:
    """The QR code of the credential's own URL, for whoever may read it (the holder above
    all); otherwise the same 404 as for no credential."""
    async with engine.connect() as conn:
        found = await sharing.readable(conn, credential_id, viewer)
    if found is None:
        raise not_found(credential_id)
    public = found[1] == "public"
    return svg_file(credential_url(base, credential_id), f"credential-{credential_id}-qr.svg",
                    PUBLIC_CACHE if public else PRIVATE_CACHE)


@router.get("/exchanges/{exchange_id}/qr.png", include_in_schema=False)
async def exchange_qr(exchange_id: uuid.UUID, exchanges: ExchangeService) -> Response:
    """The QR code of a wallet exchange's deep link, while the exchange is open (the issue
    mail links here; the exchange id is the capability, as in the link itself)."""
    link = await exchanges.open_link(exchange_id)
    return Response(qr.png(link), media_type="image/png", headers={
        "Cache-Control": PRIVATE_CACHE, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer"})


@router.get("/c/{token}", include_in_schema=False)
async def shared_credential(token: str, request: Request, pages: PagesService) -> Response:
    return await pages.by_link(request, token)


@router.get("/c/{token}/qr.svg", include_in_schema=False)
async def link_qr(token: str, engine: Engine, base: BaseUrl) -> Response:
    """The QR code of a live share link, for whoever holds the link."""
    async with engine.connect() as conn:
        row = await sharing.credential_for_link(conn, token)
    if row is None:
        raise Problem(410, "Share link not valid", "this share link has expired or was "
                      "withdrawn by its holder", kind="share-link-gone")
    return svg_file(f"{base}/c/{token}", "share-link-qr.svg", PRIVATE_CACHE)


@router.get("/p/{slug}", include_in_schema=False)
async def public_profile(slug: str, request: Request, pages: PagesService) -> Response:
    return await pages.profile(request, slug)
