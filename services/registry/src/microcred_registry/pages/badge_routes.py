"""Badge images and baked credentials.

`/badges/{definition}/v{version}.svg` is the badge the backbone draws for a definition
version (title, provider, level): what `achievement.image` names when the provider gave no
image of its own. It shows nothing about any learner, so anyone may fetch it, and it never
changes for a version: caches keep it for a day.

`/v1/credentials/{id}/baked.png` and `/baked.svg` are the badge with the signed credential
embedded (Open Badges 3.0 baking, pages.badges): for whoever may read the credential's JSON
(one access rule, `readable`), otherwise the same 404 as for no credential."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from microcred_registry.credentials import handlers as credentials
from microcred_registry.deps import CredentialViewer, Engine
from microcred_registry.pages import badges
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import Viewer
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter()

IMAGE_CACHE = "public, max-age=86400"
# A drawn SVG is shown as an image, never run: no script, no fetch, even if opened directly.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"
DEFINITION = re.compile(r"^[a-z0-9][a-z0-9-]{1,100}$")


def _not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"no {what}", kind="not-found")


@router.get("/badges/{definition_id}/v{version}.svg", include_in_schema=False)
async def drawn_badge(definition_id: str, version: int, engine: Engine) -> Response:
    if not DEFINITION.match(definition_id) or version < 1:
        raise _not_found(f"badge {definition_id} v{version}")
    async with engine.connect() as conn:
        doc = await credentials.of_definition_version(conn, definition_id, version)
    if doc is None:
        raise _not_found(f"badge {definition_id} v{version}")
    return Response(badges.svg(badges.badge_of(doc)), media_type="image/svg+xml", headers={
        "Cache-Control": IMAGE_CACHE, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SVG_CSP})


def _filename(row: Any, ext: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(row.title).lower()).strip("-")[:60] or "credential"
    return f"{slug}-{row.credential_id}.{ext}"


async def _baked(credential_id: uuid.UUID, engine: Engine,
                 viewer: Viewer) -> tuple[Any, dict[str, str]]:
    # The rule of the credential's JSON and page (ADR 9): the holder, its issuer, the
    # operator, an employer it is shared with, anyone when public; 404 for everyone else.
    async with engine.connect() as conn:
        found = await sharing.readable(conn, credential_id, viewer)
    if found is None:
        raise _not_found(f"credential {credential_id}")
    row, visibility = found
    # Who may read depends on who asks; a holder may make a public credential private.
    return row, {"Cache-Control": "no-cache" if visibility == "public" else
                 "private, no-store", "Vary": "Accept, Authorization, Cookie",
                 "X-Content-Type-Options": "nosniff"}


@router.get("/v1/credentials/{credential_id}/baked.png",
            responses={**problems.responses(404), **problems.media(200, "image/png")})
async def baked_png(credential_id: uuid.UUID, engine: Engine, viewer: CredentialViewer) -> Response:
    """The credential's badge as PNG with the signed credential in an `iTXt` chunk
    (keyword `openbadgecredential`)."""
    row, headers = await _baked(credential_id, engine, viewer)
    doc = dict(row.document)
    # The medal is drawn once per process (~0.5 s): not on the event loop.
    image = await asyncio.to_thread(badges.png, badges.badge_of(doc).colour())
    return Response(badges.bake_png(image, doc), media_type="image/png", headers={
        **headers, "Content-Disposition": f'attachment; filename="{_filename(row, "png")}"'})


@router.get("/v1/credentials/{credential_id}/baked.svg",
            responses={**problems.responses(404), **problems.media(200, "image/svg+xml")})
async def baked_svg(credential_id: uuid.UUID, engine: Engine, viewer: CredentialViewer) -> Response:
    """The credential's badge as SVG with the signed credential in
    `<openbadges:credential>`."""
    row, headers = await _baked(credential_id, engine, viewer)
    doc = dict(row.document)
    baked = badges.bake_svg(badges.svg(badges.badge_of(doc)), doc)
    return Response(baked, media_type="image/svg+xml", headers={
        **headers, "Content-Security-Policy": SVG_CSP,
        "Content-Disposition": f'attachment; filename="{_filename(row, "svg")}"'})
