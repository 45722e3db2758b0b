"""Use cases of the wallet exchange (ADR 27): a signed-in learner opens one for a credential
it holds; the wallet asks it for its request, then answers with a DID-authentication
presentation; the registry checks it and has issuance sign the holder-bound copy."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry.credentials.models import CredentialRecord
from microcred_registry.delivery import domain
from microcred_registry.delivery.models import WalletExchange
from microcred_registry.verification.handlers import Resolver
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import Session
from microcred_shared.db import table_of
from microcred_shared.problems import Problem
from microcred_shared.vc.presentation import verify_presentation


@dataclass(frozen=True)
class Issuance:
    """Issuance's internal endpoint for holder-bound copies, called with the service token."""

    url: str | None
    token: SecretStr | None
    timeout: float = 15.0

    async def bound_copy(self, credential_id: uuid.UUID, document: dict[str, Any],
                         holder: str) -> dict[str, Any]:
        if not (self.url and self.token and self.token.get_secret_value()):
            raise Problem(503, "Wallet delivery unavailable", "this deployment has no "
                          "issuance URL or service token configured", kind="unavailable")
        try:
            async with httpx.AsyncClient(base_url=self.url.rstrip("/"),
                                         timeout=self.timeout) as client:
                r = await client.post(
                    f"/internal/v1/credentials/{credential_id}/bound-copies",
                    json={"credential": document, "holder": holder},
                    headers={"authorization": f"Bearer {self.token.get_secret_value()}"})
        except httpx.HTTPError as exc:
            raise Problem(502, "Issuance unreachable", "the credential could not be signed "
                          "now; the exchange stays open, try again", kind="upstream") from exc
        if r.status_code in (409, 422):  # the credential itself: say why
            detail = r.json().get("detail", r.text) if r.headers.get(
                "content-type", "").startswith("application/problem+json") else r.text
            raise Problem(r.status_code, "Credential not delivered", str(detail),
                          kind="not-deliverable")
        if r.status_code != 201:
            raise Problem(502, "Issuance refused", f"issuance answered {r.status_code}; "
                          "the exchange stays open, try again", kind="upstream")
        return dict(r.json()["verifiableCredential"])


@dataclass(frozen=True)
class Exchanges:
    engine: AsyncEngine
    base_url: str
    issuance: Issuance
    ttl: timedelta

    def _view(self, row: Any) -> dict[str, Any]:
        url = domain.exchange_url(self.base_url, str(row.exchange_id))
        return {"id": str(row.exchange_id), "credential_id": str(row.credential_id),
                "url": url, "challenge": row.challenge,
                "domain": domain.exchange_domain(self.base_url),
                "expires_at": row.expires_at.isoformat(),
                "deep_link": domain.deep_link(self.base_url, url, row.challenge)}

    async def start(self, session: Session, credential_id: uuid.UUID) -> dict[str, Any]:
        """A new exchange for a credential the learner holds (404 for any other)."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            cred = await sharing.owned(conn, session.learner_key, credential_id)
            if cred.status != "active":
                raise Problem(409, "Credential not active", f"this credential is "
                              f"{cred.status}: it cannot go into a wallet", kind="not-active")
            row = {"exchange_id": uuid.uuid4(), "credential_id": credential_id,
                   "learner_key": session.learner_key,
                   "challenge": secrets.token_urlsafe(24), "created_at": now,
                   "expires_at": now + self.ttl, "failures": 0}
            await conn.execute(sa.insert(table_of(WalletExchange)).values(row))
        return self._view(SimpleNamespace(**row))

    async def _locked(self, conn: AsyncConnection, exchange_id: uuid.UUID) -> Any:
        row = (await conn.execute(sa.select(WalletExchange).where(
            col(WalletExchange.exchange_id) == exchange_id).with_for_update())).first()
        if row is None:
            raise Problem(404, "Not found", f"no exchange {exchange_id}", kind="not-found")
        return row

    @staticmethod
    def _refuse_closed(row: Any, now: datetime) -> None:
        why = domain.closed(domain.State(row.expires_at, row.used_at, row.failures), now)
        if why is not None:
            status, title, detail, kind = why
            raise Problem(status, title, detail, kind=kind)

    async def answer(self, exchange_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """VC-API exchange step: no presentation yet, the request; a presentation, the
        credential bound to its holder, or a problem (the exchange stays open after a
        refused presentation, up to domain.MAX_FAILURES)."""
        now = datetime.now(UTC)
        vp = body.get("verifiablePresentation")
        refused: Problem | None = None
        async with self.engine.begin() as conn:
            row = await self._locked(conn, exchange_id)
            self._refuse_closed(row, now)
            url = domain.exchange_url(self.base_url, str(exchange_id))
            where = domain.exchange_domain(self.base_url)
            if vp is None:
                return domain.presentation_request(row.challenge, where, url)
            refused = await self._check(vp, row.challenge, where)
            if refused is None:
                holder = domain.holder_of(vp)
                assert holder is not None
                copy = await self._deliver(conn, row, holder, now)
                return domain.delivered(copy)
            await conn.execute(sa.update(table_of(WalletExchange)).where(
                table_of(WalletExchange).c.exchange_id == exchange_id).values(
                failures=row.failures + 1))
        raise refused

    async def _check(self, vp: Any, challenge: str, where: str) -> Problem | None:
        if not isinstance(vp, dict):
            return Problem(400, "Invalid request body", "verifiablePresentation must be an "
                           "object")
        holder = domain.holder_of(vp)
        if holder is None or not holder.startswith("did:key:"):
            return Problem(400, "Presentation refused", "the presentation must name its "
                           "holder, a did:key", kind="presentation-refused")
        result = await verify_presentation(vp, resolve_document=Resolver(
            self.engine, self.base_url), challenge=challenge, domain=where)
        if not result.verified:
            problems = result.problems()
            return Problem(400, "Presentation refused", "; ".join(problems),
                           kind="presentation-refused",
                           errors=[{"detail": p} for p in problems])
        return None

    async def _deliver(self, conn: AsyncConnection, row: Any, holder: str,
                       now: datetime) -> dict[str, Any]:
        cred = (await conn.execute(sa.select(CredentialRecord).where(
            col(CredentialRecord.credential_id) == row.credential_id))).first()
        if cred is None or cred.status != "active":
            raise Problem(409, "Credential not active", "this credential was revoked or "
                          "suspended since the exchange began", kind="not-active")
        copy = await self.issuance.bound_copy(row.credential_id, dict(cred.document), holder)
        await conn.execute(sa.update(table_of(WalletExchange)).where(
            table_of(WalletExchange).c.exchange_id == row.exchange_id).values(
            used_at=now, holder=holder, copy_id=str(copy.get("id"))))
        return copy
