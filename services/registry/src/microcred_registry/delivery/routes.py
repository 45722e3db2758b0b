"""HTTP side of wallet delivery (ADR 27): the learner opens an exchange for a credential it
holds; the wallet drives it at its URL (VC-API exchanges: no other credential than the
exchange URL and its challenge, as the Learner Credential Wallet's `auth_type=bearer`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from microcred_registry.delivery.handlers import Exchanges
from microcred_registry.delivery.issuance import Issuance
from microcred_registry.deps import Engine, Learner, Runtime, base_url
from microcred_shared import problems
from microcred_shared.problems import Problem

router = APIRouter()


def _exchanges(rt: Runtime, engine: Engine) -> Exchanges:
    s = rt.settings
    return Exchanges(engine, base_url(rt), Issuance(s.issuance_url, s.service_token),
                     timedelta(seconds=s.exchange_ttl_seconds))


ExchangeService = Annotated[Exchanges, Depends(_exchanges)]


@router.post("/v1/learner/credentials/{credential_id}/exchanges", status_code=201,
             responses=problems.responses(404, 409, 503))
async def start(credential_id: uuid.UUID, session: Learner,
                exchanges: ExchangeService) -> dict[str, Any]:
    """"Add to wallet": a single-use exchange for this credential, with the Learner
    Credential Wallet's deep link (also drawn as a QR code on the learner's page)."""
    return await exchanges.start(session, credential_id)


@router.post("/exchanges/{exchange_id}",
             responses=problems.responses(404, 409, 410, 502, 503))
async def exchange(exchange_id: uuid.UUID, request: Request,
                   exchanges: ExchangeService) -> dict[str, Any]:
    """VC-API exchange: an empty body (or `{}`) gets the DID-authentication request;
    `{"verifiablePresentation": ...}` signed by the holder's did:key with the request's
    challenge and domain gets `{"verifiablePresentation": {"verifiableCredential": [...]}}`
    with the credential bound to that DID."""
    raw = await request.body()
    body: Any = {}
    if raw.strip():
        try:
            body = await request.json()
        except ValueError as exc:
            raise Problem(400, "Invalid request body", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise Problem(400, "Invalid request body", "expected {} or "
                      "{\"verifiablePresentation\": {...}}")
    return await exchanges.answer(exchange_id, body)
