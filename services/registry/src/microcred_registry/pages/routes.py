"""What anyone may open: the credential's own URL (the signed JSON for programs, the page
for people), share links `/c/{token}`, public profiles `/p/{slug}`, and the QR codes of
those URLs.

A QR code is drawn for a URL its requester may already open: the owner's own credential, a
public page, or a live share link presented by whoever holds it. Share link tokens are kept
only as digests, so a link's QR code can be drawn when it is made (or by the link's holder
at `/c/{token}/qr.svg`), never later from the database."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from microcred_registry.credentials import handlers as credentials
from microcred_registry.credentials.domain import VC_JSON, credential_url
from microcred_registry.deps import BaseUrl, Engine, PagesService, Reader
from microcred_registry.pages import qr
from microcred_registry.pages.rendering import wants_json_page
from microcred_registry.wallet import sharing
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


@router.get("/v1/credentials/{credential_id}")
async def get_credential(credential_id: uuid.UUID, request: Request, engine: Engine,
                         pages: PagesService) -> Response:
    """Programs get the signed JSON (anyone holding the unguessable id: it is the
    credential's own URL); people asking for HTML get the page, which follows the
    holder's visibility choice (ADR 9)."""
    if not wants_json_page(request, default=True):
        return await pages.by_id(request, credential_id)
    return JSONResponse(await credentials.document(engine, credential_id), media_type=VC_JSON,
                        headers={"Vary": "Accept"})


@router.get("/v1/credentials/{credential_id}/qr.svg", include_in_schema=False)
async def credential_qr(credential_id: uuid.UUID, engine: Engine, base: BaseUrl,
                        reader: Reader) -> Response:
    """The QR code of the credential's own URL: for anyone when it is public, for its
    signed-in holder always; otherwise the same 404 as for no credential."""
    async with engine.connect() as conn:
        row = await credentials.credential(conn, credential_id)
        visibility = (await sharing.visibility_of(conn, credential_id))[0] if row else None
    mine = row is not None and reader is not None and reader.learner_key == row.learner_key
    if row is None or not (visibility == "public" or mine):
        raise Problem(404, "Not found", f"no credential {credential_id}", kind="not-found")
    return svg_file(credential_url(base, credential_id), f"credential-{credential_id}-qr.svg",
                    PUBLIC_CACHE if visibility == "public" else PRIVATE_CACHE)


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
