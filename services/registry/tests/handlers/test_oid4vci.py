"""OpenID4VCI's use cases on a real database (ADR 28): offer, token, nonce and credential,
with issuance's bound-copies endpoint answered by a stand-in that records what it was
asked. The refusals a wallet meets: wrong or missing transaction code, a used or unknown
code, a bad proof, a foreign or reused nonce, a used token."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from microcred_registry.delivery.issuance import Issuance as IssuanceClient
from microcred_registry.oid4vci import domain
from microcred_registry.oid4vci.domain import OAuthError
from microcred_registry.oid4vci.handlers import Oid4vci
from microcred_shared.contract import topics
from microcred_shared.contract.events import CredentialIssued, learner_key
from microcred_shared.problems import Problem
from microcred_shared.vc.keys import did_key

BASE = "https://registry.test"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
ADA, BOB = learner_key("ada@learners.example"), learner_key("bob@learners.example")
CID = uuid.UUID(int=7)
DOC = {"id": f"urn:uuid:{CID}", "name": "Data analysis",
       "credentialSubject": {"type": ["AchievementSubject"]}}


class Issuance:
    """Stands in for issuance's POST /internal/v1/credentials/{id}/bound-copies."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer service-secret"
        assert request.url.path == f"/internal/v1/credentials/{CID}/bound-copies"
        body = json.loads(request.content)
        self.asked.append(body)
        bound = {**body["credential"], "id": f"urn:uuid:{uuid.uuid4()}", "credentialSubject": {
            "id": body["holder"], **body["credential"]["credentialSubject"]},
            "proof": {"type": "DataIntegrityProof"}}
        return httpx.Response(201, json={"verifiableCredential": bound})


@pytest.fixture
async def issuance() -> Issuance:
    return Issuance()


@pytest.fixture
async def svc(db: Any, issuance: Issuance) -> Oid4vci:
    await db.register(CredentialIssued(
        credential_id=CID, provider_id="lakeshore", learner_key=ADA, title="Data analysis",
        issued_at=T0, credential=DOC))
    binding = IssuanceClient("http://issuance.test", SecretStr("service-secret"),
                             transport=httpx.MockTransport(issuance.handle))
    return Oid4vci(db.engine, BASE, timedelta(minutes=10), binding)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def proof(key: Ed25519PrivateKey, *, nonce: str | None, aud: str = BASE,
          iat: float | None = None, typ: str = domain.PROOF_TYP, as_jwk: bool = False,
          alg: str = "EdDSA") -> str:
    holder = did_key(key.public_key())
    header: dict[str, Any] = {"typ": typ, "alg": alg}
    if as_jwk:
        raw = key.public_key().public_bytes_raw()
        header["jwk"] = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    else:
        header["kid"] = f"{holder}#{holder.removeprefix('did:key:')}"
    payload = {"aud": aud, "iat": int(time.time() if iat is None else iat)}
    if nonce is not None:
        payload["nonce"] = nonce
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing}.{b64(key.sign(signing.encode()))}"


def code_of(offer: dict[str, Any]) -> str:
    return str(offer["grants"][domain.PRE_AUTHORIZED_GRANT]["pre-authorized_code"])


async def token_for(svc: Oid4vci) -> str:
    offered = await svc.offer(ADA, CID)
    body = await svc.token({"grant_type": domain.PRE_AUTHORIZED_GRANT,
                            "pre-authorized_code": code_of(offered.offer),
                            "tx_code": offered.tx_code})
    return str(body["access_token"])


def request(jwt: str) -> dict[str, Any]:
    return {"credential_configuration_id": domain.CONFIGURATION_ID,
            "proofs": {"jwt": [jwt]}}


async def refused(call: Any, error: str) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await call
    assert caught.value.error == error, caught.value.description
    return caught.value


async def test_a_holder_receives_the_credential_bound_to_its_key(
        svc: Oid4vci, issuance: Issuance) -> None:
    offered = await svc.offer(ADA, CID)
    assert offered.link.startswith("openid-credential-offer://?credential_offer=")
    assert offered.offer["credential_configuration_ids"] == [domain.CONFIGURATION_ID]
    assert len(offered.tx_code) == 6 and offered.tx_code.isdigit()
    token = await svc.token({"grant_type": domain.PRE_AUTHORIZED_GRANT,
                             "pre-authorized_code": code_of(offered.offer),
                             "tx_code": offered.tx_code})
    assert token["token_type"] == "Bearer" and token["expires_in"] == 600
    key = Ed25519PrivateKey.generate()
    out = await svc.credential(token["access_token"],
                               request(proof(key, nonce=await svc.nonce())))
    [issued] = out["credentials"]
    assert issued["credential"]["credentialSubject"]["id"] == did_key(key.public_key())
    # Issuance was asked to bind the stored credential, exactly as it was signed.
    assert issuance.asked == [{"credential": DOC, "holder": did_key(key.public_key())}]


async def test_a_jwk_proof_binds_to_the_did_key_of_that_key(svc: Oid4vci) -> None:
    key = Ed25519PrivateKey.generate()
    out = await svc.credential(await token_for(svc), {
        "format": "ldp_vc", "credential_definition": {
            "type": ["VerifiableCredential", "OpenBadgeCredential"]},
        "proof": {"proof_type": "jwt",
                  "jwt": proof(key, nonce=await svc.nonce(), as_jwk=True)}})
    assert out["credentials"][0]["credential"]["credentialSubject"]["id"] == did_key(
        key.public_key())


async def test_only_the_holder_may_offer_a_credential(svc: Oid4vci) -> None:
    with pytest.raises(Problem) as caught:
        await svc.offer(BOB, CID)
    assert caught.value.status == 404


async def test_the_transaction_code_is_required_checked_and_limited(svc: Oid4vci) -> None:
    offered = await svc.offer(ADA, CID)
    grant = {"grant_type": domain.PRE_AUTHORIZED_GRANT,
             "pre-authorized_code": code_of(offered.offer)}
    await refused(svc.token(grant), "invalid_request")
    wrong = "000000" if offered.tx_code != "000000" else "111111"
    await refused(svc.token({**grant, "tx_code": wrong}), "invalid_grant")
    # A wrong guess leaves the offer usable, until the attempts run out.
    assert (await svc.token({**grant, "tx_code": offered.tx_code}))["access_token"]

    burned = await svc.offer(ADA, CID)
    grant = {"grant_type": domain.PRE_AUTHORIZED_GRANT,
             "pre-authorized_code": code_of(burned.offer)}
    for _ in range(domain.TX_CODE_ATTEMPTS):
        await refused(svc.token({**grant, "tx_code": wrong}), "invalid_grant")
    await refused(svc.token({**grant, "tx_code": burned.tx_code}), "invalid_grant")


async def test_a_code_is_used_once_and_unknown_codes_and_grants_are_refused(
        svc: Oid4vci) -> None:
    offered = await svc.offer(ADA, CID)
    grant = {"grant_type": domain.PRE_AUTHORIZED_GRANT,
             "pre-authorized_code": code_of(offered.offer), "tx_code": offered.tx_code}
    await svc.token(grant)
    await refused(svc.token(grant), "invalid_grant")
    await refused(svc.token({**grant, "pre-authorized_code": "forged"}), "invalid_grant")
    await refused(svc.token({**grant, "grant_type": "authorization_code"}),
                  "unsupported_grant_type")


async def test_an_expired_code_is_refused(db: Any, svc: Oid4vci) -> None:
    offered = await svc.offer(ADA, CID)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE oid4vci_offers "
                                   "SET expires_at = now() - interval '1 second'"))
    await refused(svc.token({"grant_type": domain.PRE_AUTHORIZED_GRANT,
                             "pre-authorized_code": code_of(offered.offer),
                             "tx_code": offered.tx_code}), "invalid_grant")


@pytest.mark.parametrize(("change", "error"), [
    ({"aud": "https://elsewhere.test"}, "invalid_proof"),
    ({"iat": time.time() - 3600}, "invalid_proof"),
    ({"typ": "JWT"}, "invalid_proof"),
    ({"alg": "ES256"}, "invalid_proof"),
    ({"nonce": None}, "invalid_nonce"),
])
async def test_a_bad_proof_is_refused_and_the_token_stays_usable(
        svc: Oid4vci, issuance: Issuance, change: dict[str, Any], error: str) -> None:
    token = await token_for(svc)
    key = Ed25519PrivateKey.generate()
    nonce = await svc.nonce()
    await refused(svc.credential(token, request(proof(key, **{"nonce": nonce, **change}))),
                  error)
    assert issuance.asked == []
    assert (await svc.credential(token, request(proof(key, nonce=nonce))))["credentials"]


async def test_a_forged_signature_a_foreign_or_reused_nonce_and_a_used_token_are_refused(
        svc: Oid4vci) -> None:
    token = await token_for(svc)
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    nonce = await svc.nonce()
    jwt = proof(key, nonce=nonce)
    forged = jwt.rsplit(".", 1)[0] + "." + proof(other, nonce=nonce).rsplit(".", 1)[1]
    await refused(svc.credential(token, request(forged)), "invalid_proof")
    await refused(svc.credential(token, request(proof(key, nonce="not-ours"))),
                  "invalid_nonce")
    await refused(svc.credential(token, {"credential_configuration_id": "other",
                                         "proofs": {"jwt": [jwt]}}),
                  "unknown_credential_configuration")
    await svc.credential(token, request(jwt))
    second = await token_for(svc)
    await refused(svc.credential(second, request(jwt)), "invalid_nonce")  # nonce used
    error = await refused(svc.credential(token, request(proof(key, nonce=await svc.nonce()))),
                          "invalid_token")
    assert error.status == 401
    await refused(svc.credential("forged", request(jwt)), "invalid_token")


@pytest.mark.parametrize("language", ["en", "fr"])
async def test_the_transaction_code_goes_to_the_learner_by_mail_in_their_language(
        svc: Oid4vci, db: Any, language: str) -> None:
    offered = await svc.offer(ADA, CID, language)
    [mail] = [o["payload"] for o in await db.published()
              if o["topic"] == topics.LEARNER_SIGNIN]
    # The code travels to notify (which knows the learner's address), never with the offer.
    assert (mail["tx_code"], mail["language"]) == (offered.tx_code, language)
    assert (mail["credential_id"], mail["learner_key"]) == (str(CID), ADA)
    assert mail["title"] == "Data analysis"  # as the credential names it
    assert offered.tx_code not in offered.link
