"""OpenID Federation 1.0 entity statements, signed by the registry's own Ed25519 key (JWS
compact serialization, `alg: EdDSA`, `typ: entity-statement+jwt`). Pure: no I/O.

The registry is the federation's trust anchor: its entity configuration (at
`/.well-known/openid-federation`) names its key and its fetch and list endpoints; the fetch
endpoint answers a subordinate statement about one listed issuer DID.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microcred_shared.vc.keys import public_key_bytes

LIFETIME_SECONDS = 24 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(public: bytes, kid: str | None = None) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(public), "use": "sig", "alg": "EdDSA",
            **({"kid": kid} if kid else {})}


def key_id(key: Ed25519PrivateKey) -> str:
    """The RFC 7638 JWK thumbprint of the public key: stable for the key, new on rotation."""
    public = jwk(public_key_bytes(key.public_key()))
    canonical = json.dumps({k: public[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def sign(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    header = {"alg": "EdDSA", "kid": key_id(key), "typ": "entity-statement+jwt"}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode())
                             for part in (header, payload))
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


def entity_configuration(base: str, key: Ed25519PrivateKey, metadata: dict[str, Any],
                         now: int) -> str:
    public = public_key_bytes(key.public_key())
    return sign({"iss": base, "sub": base, "iat": now, "exp": now + LIFETIME_SECONDS,
                 "jwks": {"keys": [jwk(public, key_id(key))]}, "metadata": metadata}, key)


def subordinate_statement(base: str, sub: str, key: Ed25519PrivateKey,
                          subject_keys: list[dict[str, str]], metadata: dict[str, Any],
                          now: int) -> str:
    """What the trust anchor says about `sub`: its keys (the did:web's assertion keys) and
    its metadata."""
    return sign({"iss": base, "sub": sub, "iat": now, "exp": now + LIFETIME_SECONDS,
                 "jwks": {"keys": subject_keys}, "metadata": metadata}, key)
