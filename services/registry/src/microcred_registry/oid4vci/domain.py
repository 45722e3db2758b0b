"""OpenID for Verifiable Credential Issuance 1.0, pre-authorized code flow (ADR 28): the
issuer metadata, the credential offer, and the checks of a `jwt` proof of possession. Pure:
no database, no network."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from microcred_shared.vc.contexts import OB_V3_URL, VC_V2_URL
from microcred_shared.vc.errors import VcError
from microcred_shared.vc.keys import did_key, resolve_did_key

PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
CONFIGURATION_ID = "OpenBadgeCredential_ldp_vc"
CREDENTIAL_TYPES = ["VerifiableCredential", "OpenBadgeCredential"]
PROOF_TYP = "openid4vci-proof+jwt"
TX_CODE_LENGTH = 6
TX_CODE_ATTEMPTS = 5  # wrong transaction codes before the offer is burned
IAT_SKEW_SECONDS = 300  # how far a proof's `iat` may be from now, either way
NONCE_TTL_SECONDS = 300


class OAuthError(Exception):
    """An error as OpenID4VCI and OAuth 2.0 define them: `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_tx_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(TX_CODE_LENGTH))


def issuer_metadata(base_url: str) -> dict[str, Any]:
    """`/.well-known/openid-credential-issuer`: the issuer is its own authorization server."""
    return {
        "credential_issuer": base_url,
        "credential_endpoint": f"{base_url}/credential",
        "nonce_endpoint": f"{base_url}/nonce",
        # Drafts before 1.0 read the token endpoint here; 1.0 clients read the
        # authorization server's metadata (served too).
        "token_endpoint": f"{base_url}/token",
        "display": [{"name": "microcred", "locale": "en"},
                    {"name": "microcred", "locale": "fr"}],
        "credential_configurations_supported": {
            CONFIGURATION_ID: {
                "format": "ldp_vc",
                "cryptographic_binding_methods_supported": ["did:key", "jwk"],
                "credential_signing_alg_values_supported": ["eddsa-rdfc-2022",
                                                            "eddsa-jcs-2022"],
                "proof_types_supported": {
                    "jwt": {"proof_signing_alg_values_supported": ["EdDSA"]}},
                "credential_definition": {"@context": [VC_V2_URL, OB_V3_URL],
                                          "type": CREDENTIAL_TYPES},
                "credential_metadata": {"display": [
                    {"name": "Open Badge", "locale": "en"},
                    {"name": "Open Badge", "locale": "fr"}]},
                "display": [{"name": "Open Badge", "locale": "en"},
                            {"name": "Open Badge", "locale": "fr"}],
            },
        },
    }


def authorization_server_metadata(base_url: str) -> dict[str, Any]:
    """RFC 8414 metadata: only the pre-authorized code grant, no client authentication."""
    return {
        "issuer": base_url,
        "token_endpoint": f"{base_url}/token",
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        "pre-authorized_grant_anonymous_access_supported": True,
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
    }


def credential_offer(base_url: str, code: str, with_tx_code: bool) -> dict[str, Any]:
    grant: dict[str, Any] = {"pre-authorized_code": code}
    if with_tx_code:
        grant["tx_code"] = {"input_mode": "numeric", "length": TX_CODE_LENGTH,
                            "description": "The code we e-mailed you"}
    return {"credential_issuer": base_url, "credential_configuration_ids": [CONFIGURATION_ID],
            "grants": {PRE_AUTHORIZED_GRANT: grant}}


def offer_link(offer: dict[str, Any]) -> str:
    body = json.dumps(offer, separators=(",", ":"))
    return "openid-credential-offer://?credential_offer=" + quote(body, safe="")


def requested_configuration(body: dict[str, Any]) -> None:
    """The credential request names our one configuration: by id (1.0), or by format and
    type (the drafts many wallets still send)."""
    if "credential_identifier" in body:
        raise OAuthError("invalid_credential_request",
                         "this issuer gives no credential identifiers; name the "
                         "credential_configuration_id")
    config = body.get("credential_configuration_id")
    if config is not None:
        if config != CONFIGURATION_ID:
            raise OAuthError("unknown_credential_configuration",
                             f"no credential configuration {config!r}")
        return
    if body.get("format") == "ldp_vc":
        types = (body.get("credential_definition") or {}).get("type")
        if isinstance(types, list) and set(types) <= set(CREDENTIAL_TYPES):
            return
        raise OAuthError("unknown_credential_configuration",
                         "ldp_vc is issued for type VerifiableCredential, OpenBadgeCredential")
    raise OAuthError("invalid_credential_request", "name the credential_configuration_id")


def proof_jwt(body: dict[str, Any]) -> str:
    """The one `jwt` proof of the request (`proofs` in 1.0, `proof` in the drafts)."""
    proofs = body.get("proofs")
    if isinstance(proofs, dict):
        jwts = proofs.get("jwt")
        if set(proofs) != {"jwt"} or not isinstance(jwts, list) or len(jwts) != 1:
            raise OAuthError("invalid_proof", "one proof of type jwt is expected")
        jwt = jwts[0]
    elif isinstance(body.get("proof"), dict):
        proof = body["proof"]
        if proof.get("proof_type") != "jwt":
            raise OAuthError("invalid_proof", "proof_type jwt is the one supported")
        jwt = proof.get("jwt")
    else:
        raise OAuthError("invalid_proof", "a proof of possession of the holder's key is "
                         "required")
    if not isinstance(jwt, str):
        raise OAuthError("invalid_proof", "the jwt proof is not a string")
    return jwt


def _b64(part: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True)
class Possession:
    holder: str  # the DID the credential is bound to
    nonce: str


def _holder_key(header: dict[str, Any]) -> tuple[Ed25519PublicKey, str]:
    kid, jwk = header.get("kid"), header.get("jwk")
    if (kid is None) == (jwk is None):
        raise OAuthError("invalid_proof", "the proof names the key by kid (did:key) or jwk, "
                         "exactly one")
    if kid is not None:
        if not isinstance(kid, str) or not kid.startswith("did:key:"):
            raise OAuthError("invalid_proof", "kid must be a did:key verification method")
        try:
            key = resolve_did_key(kid)
        except VcError as exc:
            raise OAuthError("invalid_proof", f"kid: {exc}") from exc
        return key, kid.partition("#")[0]
    if not (isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519"
            and isinstance(jwk.get("x"), str) and "d" not in jwk):
        raise OAuthError("invalid_proof", "jwk must be a public Ed25519 OKP key")
    try:
        key = Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    except (ValueError, binascii.Error) as exc:
        raise OAuthError("invalid_proof", "jwk x is not an Ed25519 public key") from exc
    return key, did_key(key)


def check_proof(jwt: str, *, audience: str, now: float | None = None) -> Possession:
    """A `jwt` proof of possession (OpenID4VCI 1.0 appendix F.1): typ, EdDSA, the holder's
    key, the signature, `aud` = this issuer, a recent `iat`, a `nonce`. Whether the nonce is
    ours and unused is the caller's check."""
    parts = jwt.split(".")
    if len(parts) != 3:
        raise OAuthError("invalid_proof", "the proof is not a compact JWS")
    try:
        header, payload = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except (ValueError, binascii.Error) as exc:
        raise OAuthError("invalid_proof", "the proof is not a compact JWS") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise OAuthError("invalid_proof", "the proof's header and payload must be objects")
    if header.get("typ") != PROOF_TYP:
        raise OAuthError("invalid_proof", f"typ must be {PROOF_TYP}")
    if header.get("alg") != "EdDSA":
        raise OAuthError("invalid_proof", "alg must be EdDSA")
    key, holder = _holder_key(header)
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode())
    except InvalidSignature as exc:
        raise OAuthError("invalid_proof", "the proof's signature does not verify") from exc
    aud = payload.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise OAuthError("invalid_proof", f"aud must be {audience}")
    iat = payload.get("iat")
    moment = time.time() if now is None else now
    if not isinstance(iat, int | float) or isinstance(iat, bool) \
            or abs(moment - iat) > IAT_SKEW_SECONDS:
        raise OAuthError("invalid_proof", "iat is missing or not recent")
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise OAuthError("invalid_nonce", "the proof carries no c_nonce; get one from the "
                         "nonce endpoint")
    return Possession(holder, nonce)
