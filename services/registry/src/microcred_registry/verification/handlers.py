"""Verification as the registry offers it: our own documents come from our database (a
credential by its id only for who may read it, a share link's while the link is live), any
other URL is fetched with strict limits (microcred_registry.verification.fetch). A document
someone holds is verified as given: that needs no access to ours."""

from __future__ import annotations

import uuid
from collections import OrderedDict
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


# Our own issuer and status-list documents as verification last read them, by (path,
# version): a stored credential's verification learns the current versions in the statement
# that reads the credential (wallet.sharing.read_by_id) and takes an unchanged document from
# here instead of another round trip. A new version is a new key: nothing here can be stale,
# whichever instance applied the change. Shared by every request: never modified.
_DOCUMENTS: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
DOCUMENT_CACHE = 4096


def _cached(path: str, version: str | None) -> dict[str, Any] | None:
    if version is None:
        return None
    doc = _DOCUMENTS.get((path, version))
    if doc is not None:
        _DOCUMENTS.move_to_end((path, version))
    return doc


def _keep(path: str, version: str, doc: dict[str, Any]) -> None:
    _DOCUMENTS[path, version] = doc
    if len(_DOCUMENTS) > DOCUMENT_CACHE:
        _DOCUMENTS.popitem(last=False)


class Resolver:
    """Resolves the documents a verification needs (issuer keys, status lists). `versions`
    (wallet.sharing.Stored.versions): the current version of our own documents, so that
    an unchanged one is taken from memory."""

    def __init__(self, engine: AsyncEngine, base_url: str,
                 client: httpx.AsyncClient | None = None,
                 versions: dict[str, str] | None = None) -> None:
        self._engine, self._base = engine, base_url.rstrip("/")
        self._client = client
        self._versions = versions or {}

    async def __call__(self, url: str) -> dict[str, Any]:
        if is_local(url, self._base):
            return await self.local(url[len(self._base):])
        return await self.remote(url)

    def _version_key(self, path: str) -> str | None:
        """The key of `path` in VERIFICATION_VERSIONS, for the documents it states."""
        if path.startswith("/status/"):
            return self._base + path
        parts = path.split("#")[0].split("/")
        if len(parts) in (3, 4) and parts[1] == "issuers":
            return credentials.issuer_version_key(parts[2])
        return None

    async def local(self, path: str) -> dict[str, Any]:
        path = path.split("#")[0]
        key = self._version_key(path)
        found = _cached(path, self._versions.get(key) if key else None)
        if found is not None:
            return found
        doc, version = await self._read(path)
        if version is not None:
            _keep(path, version, doc)
        return doc

    async def _read(self, path: str) -> tuple[dict[str, Any], str | None]:
        """The document at our `path` from the database, and its version."""
        if (status := fresh_lists.parse_status_path(path)) is not None:
            # A credential issued a moment ago may point into a list still on its way.
            found = await fresh_lists.status_list_soon(self._engine, self._base, *status)
            if found is None:
                raise NotFound(path)
            return found[0], str(found[1])
        parts = path.split("/")  # "", "issuers", id[, "did.json"]
        if path.startswith("/issuers/") and (len(parts) == 3 or parts[3:] == ["did.json"]):
            issuer = await credentials.issuer_document_versioned(
                self._engine, parts[2], self._base, did=parts[3:] == ["did.json"])
            if issuer is None:
                raise NotFound(path)
            return issuer
        return await self._read_other(path), None

    async def _read_other(self, path: str) -> dict[str, Any]:
        """Any other path of ours: a status list stored under an URL of another shape."""
        if path.startswith("/status/"):
            async with self._engine.connect() as conn:
                found = await credentials.status_list(conn, self._base + path)
            if found is not None:
                return found[0]
        raise NotFound(path)

    async def remote(self, url: str) -> dict[str, Any]:
        return await fetch.remote_document(url, self._client)


async def verify_document(engine: AsyncEngine, base: str, doc: dict[str, Any], *,
                          versions: dict[str, str] | None = None,
                          source: str | None = None) -> dict[str, Any]:
    """The live verification result of a credential document; `versions` as Resolver's;
    `source`: the stored JSON text `doc` was parsed from (vc.verify.verify_credential)."""
    return as_json(await verify_credential(doc, resolve_document=Resolver(
        engine, base, versions=versions), source=source))


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
    """A stored credential's live verification, for who may read it (404 problem as for no
    credential otherwise): the credential, who may read it and the versions of the issuer
    and status lists in one statement; those documents from memory while unchanged."""
    stored = await sharing.read_by_id(engine, credential_id, viewer, for_verification=True)
    if stored is None:
        raise Problem(404, "Not found", f"no credential {credential_id} you may read",
                      kind="not-found")
    return await verify_document(engine, base, stored.document, versions=stored.versions,
                                 source=stored.document_json)


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
