"""Verification as the registry offers it: our own documents come from our database (a
credential by its id only for who may read it, a share link's while the link is live), any
other URL is fetched with strict limits (microcred_registry.verification.fetch). A document
someone holds is verified as given: that needs no access to ours."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.credentials import fresh_lists
from microcred_registry.credentials import handlers as credentials
from microcred_registry.credentials.domain import credential_url
from microcred_registry.verification import fetch
from microcred_registry.verification.domain import as_json, is_local, presentation_json
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import ANYONE, Viewer
from microcred_shared.problems import Problem
from microcred_shared.vc.presentation import verify_presentation
from microcred_shared.vc.verify import verify_credential


class NotFound(LookupError):
    pass


class Resolver:
    """Resolves the documents a verification needs (issuer keys, status lists)."""

    def __init__(self, engine: AsyncEngine, base_url: str,
                 client: httpx.AsyncClient | None = None) -> None:
        self._engine, self._base = engine, base_url.rstrip("/")
        self._client = client

    async def __call__(self, url: str) -> dict[str, Any]:
        if is_local(url, self._base):
            return await self.local(url[len(self._base):])
        return await self.remote(url)

    async def local(self, path: str) -> dict[str, Any]:
        doc: dict[str, Any] | None = None
        if (status := fresh_lists.parse_status_path(path)) is not None:
            # A credential issued a moment ago may point into a list still on its way.
            found = await fresh_lists.status_list_soon(self._engine, self._base, *status)
            if found is None:
                raise NotFound(path)
            return found[0]
        async with self._engine.connect() as conn:
            if path.startswith("/issuers/"):
                parts = path.split("#")[0].split("/")  # "", "issuers", id[, "did.json"]
                doc = await credentials.issuer_document(
                    conn, parts[2], self._base, did=parts[3:] == ["did.json"]) if (
                    len(parts) == 3 or parts[3:] == ["did.json"]) else None
            elif path.startswith("/status/"):
                found = await credentials.status_list(conn, self._base + path)
                doc = found[0] if found else None
        if doc is None:
            raise NotFound(path)
        return doc

    async def remote(self, url: str) -> dict[str, Any]:
        return await fetch.remote_document(url, self._client)


async def verify_document(engine: AsyncEngine, base: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The live verification result of a credential document."""
    return as_json(await verify_credential(doc, resolve_document=Resolver(engine, base)))


async def readable_document(engine: AsyncEngine, credential_id: uuid.UUID,
                            viewer: Viewer) -> dict[str, Any]:
    """The stored document when `viewer` may read it (wallet.domain.may_read); otherwise
    the same 404 problem as for no credential."""
    async with engine.connect() as conn:
        found = await sharing.readable(conn, credential_id, viewer)
    if found is None:
        raise Problem(404, "Not found", f"no credential {credential_id} you may read",
                      kind="not-found")
    return dict(found[0].document)


async def verify_presented(engine: AsyncEngine, base: str, vp: dict[str, Any], *,
                           challenge: str | None, domain: str | None) -> dict[str, Any]:
    """The live verification result of a presentation and of every credential in it."""
    return presentation_json(await verify_presentation(
        vp, resolve_document=Resolver(engine, base), challenge=challenge, domain=domain))



async def verify_stored(engine: AsyncEngine, base: str, credential_id: uuid.UUID,
                        viewer: Viewer = ANYONE) -> dict[str, Any]:
    return await verify_document(engine, base,
                                 await readable_document(engine, credential_id, viewer))


async def linked_document(engine: AsyncEngine, token: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await sharing.credential_for_link(conn, token)
    if row is None:
        raise Problem(410, "Share link not valid", "this share link has expired or was "
                      "withdrawn by its holder", kind="share-link-gone")
    return dict(row.document)


async def verify_url(engine: AsyncEngine, base: str, url: str,
                     viewer: Viewer = ANYONE) -> dict[str, Any]:
    """The verification result for any credential URL: ours read from the database under
    the same rules as fetching them (a credential's own URL for who may read it, a share
    link while it is live: 404 and 410 problems as there), any other fetched (https, public
    addresses only); 422 problem when it cannot be had."""
    own, link = credential_url(base, ""), f"{base}/c/"
    path = url.split("?", 1)[0].split("#", 1)[0]
    try:
        if path.startswith(own):
            doc = await readable_document(engine, uuid.UUID(path[len(own):]), viewer)
        elif path.startswith(link):
            doc = await linked_document(engine, path[len(link):])
        else:
            doc = await Resolver(engine, base)(url)
    except (ValueError, LookupError, OSError) as exc:
        raise Problem(422, "Cannot fetch credential", str(exc), kind="unfetchable") from exc
    return await verify_document(engine, base, doc)
