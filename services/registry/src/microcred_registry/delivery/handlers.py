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

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry.credentials.models import CredentialRecord
from microcred_registry.delivery import domain
from microcred_registry.delivery.issuance import Issuance, Refused, Unavailable
from microcred_registry.delivery.models import WalletExchange
from microcred_registry.verification.handlers import Resolver
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import Session
from microcred_shared.db import driver_in_transaction, table_of
from microcred_shared.problems import Problem
from microcred_shared.vc.presentation import verify_presentation


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

    async def open_link(self, exchange_id: uuid.UUID) -> str:
        """The deep link of an exchange that still takes a presentation (its QR code in the
        issue mail); a used, expired or closed one is the problem a wallet would get."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(WalletExchange).where(
                col(WalletExchange.exchange_id) == exchange_id))).first()
        if row is None:
            raise Problem(404, "Not found", f"no exchange {exchange_id}", kind="not-found")
        self._refuse_closed(row, datetime.now(UTC))
        url = domain.exchange_url(self.base_url, str(exchange_id))
        return domain.deep_link(self.base_url, url, row.challenge)

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
        try:
            copy = await self.issuance.bound_copy(row.credential_id, dict(cred.document),
                                                  holder)
        except Unavailable as exc:
            if not exc.configured:
                raise Problem(503, "Wallet delivery unavailable", str(exc),
                              kind="unavailable") from exc
            raise Problem(502, "Issuance unavailable", "the credential could not be signed "
                          "now; the exchange stays open, try again", kind="upstream") from exc
        except Refused as exc:
            raise Problem(409 if exc.status == 409 else 422, "Credential not delivered",
                          str(exc), kind="not-deliverable") from exc
        await conn.execute(sa.update(table_of(WalletExchange)).where(
            table_of(WalletExchange).c.exchange_id == row.exchange_id).values(
            used_at=now, holder=holder, copy_id=str(copy.get("id"))))
        return copy


_MAIL_EXCHANGES_SQL = (
    "INSERT INTO wallet_exchanges (exchange_id, credential_id, learner_key, challenge, "
    "created_at, expires_at, failures) SELECT x, c, l, ch, CAST({now} AS timestamptz), "
    "CAST({exp} AS timestamptz), 0 FROM "
    "unnest(CAST({ids} AS uuid[]), CAST({cids} AS uuid[]), CAST({keys} AS text[]), "
    "CAST({challenges} AS text[])) AS u(x, c, l, ch)")
_MAIL_EXCHANGES_PARAMS = ("ids", "cids", "keys", "challenges", "now", "exp")
_MAIL_EXCHANGES = sa.text(_MAIL_EXCHANGES_SQL.format(
    **{k: f":{k}" for k in _MAIL_EXCHANGES_PARAMS}))
# Inside the consumer's transaction: on the driver's connection (db.driver_in_transaction).
_MAIL_EXCHANGES_DRIVER = _MAIL_EXCHANGES_SQL.format(
    **{k: f"${n}" for n, k in enumerate(_MAIL_EXCHANGES_PARAMS, start=1)})


async def mail_exchanges(conn: AsyncConnection, owed: list[tuple[uuid.UUID, str]], *,
                         base_url: str, ttl: timedelta) -> dict[uuid.UUID, tuple[str, str]]:
    """One exchange per newly registered credential whose learner is mailed (credential id,
    learner key), in the registration's transaction: the issue mail's "Add to wallet" deep
    link and the URL of its QR code, by credential id. The mail is the learner's own
    channel (their sign-in links go there too); the exchange is single-use and expires."""
    if not owed:
        return {}
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in owed]
    challenges = [secrets.token_urlsafe(24) for _ in owed]
    values = (ids, [c for c, _ in owed], [k for _, k in owed], challenges, now, now + ttl)
    if (driver := await driver_in_transaction(conn)) is not None:
        await driver.execute(_MAIL_EXCHANGES_DRIVER, *values)
    else:
        await conn.execute(_MAIL_EXCHANGES, dict(zip(_MAIL_EXCHANGES_PARAMS, values,
                                                     strict=True)))
    out: dict[uuid.UUID, tuple[str, str]] = {}
    for (cid, _), xid, challenge in zip(owed, ids, challenges, strict=True):
        url = domain.exchange_url(base_url, str(xid))
        out[cid] = (domain.deep_link(base_url, url, challenge), url + "/qr.png")
    return out
