"""The trust list's reads: the providers projected from the compacted providers topic
(`microcred_shared.projection`'s provider rows, written by registry's own consumer) and the
listed issuers' keys (their DID documents)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry.credentials import handlers as credentials
from microcred_registry.trust import domain
from microcred_registry.trust.statements import jwk
from microcred_shared.catalog import Provider
from microcred_shared.projection import CatalogProvider
from microcred_shared.vc.keys import multikey_decode, public_key_bytes


@dataclass(frozen=True)
class Providers:
    """Every provider registry knows, with when the projection first and last changed."""

    all: list[Provider]
    created: datetime | None
    updated: datetime | None


async def providers(conn: AsyncConnection) -> Providers:
    rows = (await conn.execute(sa.select(col(CatalogProvider.doc),
                                         col(CatalogProvider.updated_at)))).all()
    moments = [r.updated_at for r in rows]
    return Providers([Provider.model_validate(r.doc) for r in rows],
                     min(moments, default=None), max(moments, default=None))


async def registered(conn: AsyncConnection, provider_id: str) -> bool:
    """Whether the provider is on the trust list now."""
    doc = (await conn.execute(sa.select(col(CatalogProvider.doc)).where(
        col(CatalogProvider.id) == provider_id))).scalar_one_or_none()
    return doc is not None and domain.in_good_standing(Provider.model_validate(doc))


async def issuer_jwks(conn: AsyncConnection, provider_id: str, base: str) -> list[dict[str, str]]:
    """The issuer's assertion keys as JWKs (its DID document's methods: a compromised key is
    not there, ADR 22)."""
    did = base.startswith("https://")  # else the profile URL is the controller (ADR 22)
    doc = await credentials.issuer_document(conn, provider_id, base, did=did)
    methods = (doc or {}).get("verificationMethod", [])
    return [jwk(public_key_bytes(multikey_decode(m["publicKeyMultibase"])), m["id"])
            for m in methods if "revoked" not in m]


# The providers as last read, by the version VERIFICATION_VERSIONS states ("providers"):
# a credential's page asks whether its issuer is listed without reading them all again.
_PROVIDERS: dict[str, list[Provider]] = {}


async def registered_issuer_at(engine: AsyncEngine, issuer_id: str, base: str,
                               version: str | None) -> bool:
    """`registered_issuer`, the providers from memory while `version` (of the providers
    projection, as the credential's read stated it) is the one last read."""
    known = _PROVIDERS.get(version) if version else None
    if known is None:
        async with engine.connect() as conn:
            known = (await providers(conn)).all
        if version:
            _PROVIDERS.clear()
            _PROVIDERS[version] = known
    return _listed_issuer(issuer_id, base, known)


async def registered_issuer(conn: AsyncConnection, issuer_id: str, base: str) -> bool:
    """Whether a credential's `issuer.id` is a listed provider: its did:web, or (credentials
    issued before ADR 22) its profile URL."""
    return _listed_issuer(issuer_id, base, (await providers(conn)).all)


def _listed_issuer(issuer_id: str, base: str, known: list[Provider]) -> bool:
    if domain.provider_of(issuer_id, base, known) is not None:
        return True
    return any(issuer_id == f"{base}/issuers/{p.id}" for p in domain.listed(known))
