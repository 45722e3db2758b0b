"""Verification as the registry offers it: our own documents come from our database, any
other URL is fetched with strict limits (microcred_registry.fetch)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from microcred_registry import fetch
from microcred_registry.models import IssuerRecord, StatusListRecord
from microcred_shared.vc import controller as controllers
from microcred_shared.vc.keys import multikey_decode
from microcred_shared.vc.verify import VerificationResult


class NotFound(LookupError):
    pass


def controller_document(issuer: IssuerRecord | sa.Row) -> dict[str, Any]:
    """Profile + controller document. Retired keys stay listed with `expires`, so what they
    signed before keeps verifying; a compromised key is listed as `revoked`."""
    keys = []
    for key in issuer.keys:
        retired = key.get("retired_at")
        keys.append(controllers.IssuerKey(
            key_id=key["key_id"], public_key=multikey_decode(key["public_multikey"]),
            expires=_dt(retired) if key["status"] == "retired" else None,
            revoked=_dt(retired) if key["status"] == "compromised" else None))
    profile = {k: v for k, v in issuer.profile.items() if k != "id"}
    return controllers.controller_document(issuer.profile["id"], keys, **profile)


def _dt(value: str | None) -> datetime | None:
    """The retirement moment, rounded up to the second: credentials carry second-precision
    times, and one signed in the same second just before the rotation must still verify."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


class Resolver:
    def __init__(self, engine: AsyncEngine, base_url: str,
                 client: httpx.AsyncClient | None = None) -> None:
        self._engine, self._base = engine, base_url.rstrip("/")
        self._client = client

    async def __call__(self, url: str) -> dict[str, Any]:
        if url.startswith(self._base + "/"):
            return await self.local(url[len(self._base):])
        return await self.remote(url)

    async def local(self, path: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            if path.startswith("/issuers/"):
                row = (await conn.execute(sa.select(IssuerRecord).where(
                    col(IssuerRecord.provider_id) == path.split("/")[2].split("#")[0]))).first()
                if row is None:
                    raise NotFound(path)
                return controller_document(row)
            if path.startswith("/status/"):
                doc = (await conn.execute(sa.select(col(StatusListRecord.credential)).where(
                    col(StatusListRecord.url) == self._base + path))).scalar_one_or_none()
                if doc is None:
                    raise NotFound(path)
                return dict(doc)
        raise NotFound(path)

    async def remote(self, url: str) -> dict[str, Any]:
        return await fetch.remote_document(url, self._client)


def as_json(result: VerificationResult) -> dict[str, Any]:
    return {
        "verified": result.verified,
        "status": result.status,
        "checks": [{"check": name, "ok": c.ok, "detail": c.detail}
                   for name, c in result.checks.items()],
        "problems": result.problems(),
    }
