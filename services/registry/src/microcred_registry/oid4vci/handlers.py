"""Use cases of OpenID4VCI (ADR 28): a signed-in learner makes an offer for a credential
they own; a wallet redeems its pre-authorized code (with the transaction code) for an access
token, takes a nonce, and exchanges token and proof of possession for the credential bound
to its key. Codes, tokens and nonces are single use and expire."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_registry.credentials.linkedin import credential_name
from microcred_registry.delivery.issuance import Issuance, Refused, Unavailable
from microcred_registry.oid4vci import domain
from microcred_registry.oid4vci.domain import OAuthError
from microcred_shared import outbox
from microcred_shared.contract import topics
from microcred_shared.contract.events_learners import WalletTxCodeIssued
from microcred_shared.problems import Problem
from microcred_shared.telemetry import traceparent_of

SOURCE = "/microcred/registry"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Offered:
    """An offer made. Its transaction code goes to the learner by e-mail (the event in the
    outbox), never with the offer: it is here for the tests of the flow only."""

    offer: dict[str, Any]
    link: str
    tx_code: str
    expires_at: datetime


def _nothing() -> None:
    pass


_OWNED = sa.text("SELECT status, title, document FROM credentials WHERE credential_id = :id "
                 "AND learner_key = :learner")
_OFFER = sa.text(
    "INSERT INTO oid4vci_offers (code_sha256, credential_id, learner_key, tx_code_sha256, "
    "tx_failures, created_at, expires_at) VALUES (:code, :id, :learner, :tx, 0, :now, :exp)")
_FIND = sa.text("SELECT * FROM oid4vci_offers WHERE code_sha256 = :code FOR UPDATE")
_FAILED = sa.text("UPDATE oid4vci_offers SET tx_failures = tx_failures + 1 "
                  "WHERE code_sha256 = :code")
_REDEEM = sa.text("UPDATE oid4vci_offers SET redeemed_at = :now, token_sha256 = :token, "
                  "token_expires_at = :exp WHERE code_sha256 = :code")
_NONCE = sa.text("INSERT INTO oid4vci_nonces (nonce, expires_at) VALUES (:n, :exp)")
# Spent and expired nonces go as new ones are made: the endpoint is public.
_PRUNE = sa.text("DELETE FROM oid4vci_nonces WHERE expires_at < :now")
_USE_NONCE = sa.text("UPDATE oid4vci_nonces SET used_at = :now WHERE nonce = :n "
                     "AND used_at IS NULL AND expires_at > :now RETURNING nonce")
_BY_TOKEN = sa.text("SELECT o.code_sha256, o.credential_id, o.token_expires_at, "
                    "o.credential_issued_at, c.document, c.status FROM oid4vci_offers o "
                    "JOIN credentials c ON c.credential_id = o.credential_id "
                    "AND c.learner_key = o.learner_key "
                    "WHERE o.token_sha256 = :token FOR UPDATE OF o")
_ISSUED = sa.text("UPDATE oid4vci_offers SET credential_issued_at = :now "
                  "WHERE code_sha256 = :code")


@dataclass(frozen=True)
class Oid4vci:
    engine: AsyncEngine
    base_url: str
    ttl: timedelta
    issuance: Issuance
    # Called after a transaction that wrote to the outbox (the relay publishes it).
    wake: Callable[[], None] = _nothing

    async def offer(self, learner_key: str, credential_id: uuid.UUID,
                    language: str = "en") -> Offered:
        """A single-use offer; its transaction code is mailed to the learner (notify finds
        the address the credential was issued to), in `language`."""
        now = datetime.now(UTC)
        code, tx_code = domain.new_secret(), domain.new_tx_code()
        async with self.engine.begin() as conn:
            owned = (await conn.execute(_OWNED, {"id": credential_id,
                                                 "learner": learner_key})).first()
            status = owned.status if owned else None
            if owned is None:
                raise Problem(404, "Not found", "no such credential of yours",
                              kind="not-found")
            if status != "active":
                raise Problem(409, "Credential not active", f"this credential is {status}: "
                              "it cannot go into a wallet", kind="not-active")
            await conn.execute(_OFFER, {"code": digest(code), "id": credential_id,
                                        "learner": learner_key, "tx": digest(tx_code),
                                        "now": now, "exp": now + self.ttl})
            mail = WalletTxCodeIssued(
                offer_id=uuid.uuid4(), credential_id=credential_id, learner_key=learner_key,
                language="fr" if language == "fr" else "en", tx_code=tx_code,
                expires_at=now + self.ttl,
                title=credential_name(dict(owned.document), language) or owned.title)
            await outbox.write(conn, [outbox.event_record(
                topics.LEARNER_SIGNIN, mail, SOURCE, traceparent=traceparent_of())])
        self.wake()
        offer = domain.credential_offer(self.base_url, code, with_tx_code=True)
        return Offered(offer, domain.offer_link(offer), tx_code, now + self.ttl)

    async def token(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != domain.PRE_AUTHORIZED_GRANT:
            raise OAuthError("unsupported_grant_type",
                             "only the pre-authorized code grant is supported")
        code = form.get("pre-authorized_code")
        if not code:
            raise OAuthError("invalid_request", "pre-authorized_code is missing")
        now = datetime.now(UTC)
        token = domain.new_secret()
        async with self.engine.begin() as conn:
            row = (await conn.execute(_FIND, {"code": digest(code)})).mappings().first()
            if row is None or row["redeemed_at"] is not None or row["expires_at"] <= now \
                    or row["tx_failures"] >= domain.TX_CODE_ATTEMPTS:
                raise OAuthError("invalid_grant", "the pre-authorized code is unknown, used "
                                 "or expired")
            wrong = False
            if row["tx_code_sha256"] is not None:
                tx_code = form.get("tx_code")
                if not tx_code:
                    raise OAuthError("invalid_request", "this offer needs its tx_code")
                wrong = not hmac.compare_digest(digest(tx_code), row["tx_code_sha256"])
            if wrong:  # counted, and committed: a few guesses burn the offer
                await conn.execute(_FAILED, {"code": row["code_sha256"]})
            else:
                await conn.execute(_REDEEM, {"now": now, "token": digest(token),
                                             "exp": now + self.ttl,
                                             "code": row["code_sha256"]})
        if wrong:
            raise OAuthError("invalid_grant", "the transaction code is wrong")
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(self.ttl.total_seconds())}

    async def nonce(self) -> str:
        nonce = domain.new_secret()
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(_PRUNE, {"now": now})
            await conn.execute(_NONCE, {"n": nonce, "exp": now + timedelta(
                seconds=domain.NONCE_TTL_SECONDS)})
        return nonce

    async def credential(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            row = (await conn.execute(_BY_TOKEN, {"token": digest(token)})).mappings().first()
            if row is None or row["token_expires_at"] <= now \
                    or row["credential_issued_at"] is not None:
                raise OAuthError("invalid_token", "the access token is unknown, used or "
                                 "expired", status=401)
            domain.requested_configuration(body)
            possession = domain.check_proof(domain.proof_jwt(body), audience=self.base_url)
            used = (await conn.execute(_USE_NONCE, {"n": possession.nonce, "now": now})).first()
            if used is None:
                raise OAuthError("invalid_nonce", "the c_nonce is not ours, used or expired; "
                                 "get a fresh one from the nonce endpoint")
            if row["status"] != "active":
                raise OAuthError("credential_request_denied", f"the credential is "
                                 f"{row['status']}")
            try:
                signed = await self.issuance.bound_copy(row["credential_id"],
                                                        dict(row["document"]), possession.holder)
            except Refused as exc:  # revoked or suspended since: nothing to retry
                raise OAuthError("credential_request_denied", str(exc)) from exc
            except Unavailable as exc:
                raise OAuthError("server_error", f"the credential could not be signed: {exc}",
                                 status=503) from exc
            await conn.execute(_ISSUED, {"now": now, "code": row["code_sha256"]})
        return {"credentials": [{"credential": signed}]}
