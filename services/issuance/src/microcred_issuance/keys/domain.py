"""Who an issuer is to a verifier: its profile, its key ids and verification methods, and
the proof made with its key. Pure: no I/O."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microcred_shared.catalog import Provider, Text
from microcred_shared.vc import proofs
from microcred_shared.vc.didweb import did_web

MULTICODEC_ED25519_PUB = b"\xed\x01"
COUNTRY = {"CA": "Canada"}


def multikey(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    return "z" + base58.b58encode(MULTICODEC_ED25519_PUB + raw).decode()


def new_key_id(now: datetime) -> str:
    return "key-" + now.strftime("%Y%m%d") + "-" + secrets.token_hex(3)


def key_binding(provider_id: str, key_id: str) -> bytes:
    """Associated data of a key's encryption at rest: binds each ciphertext to its row,
    so a swapped row fails to decrypt."""
    return f"microcred-issuer-key:{provider_id}:{key_id}".encode()


@dataclass(frozen=True)
class SigningKey:
    provider_id: str
    key_id: str
    private: Ed25519PrivateKey
    public_multikey: str

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey({self.provider_id}#{self.key_id})"


# Memoized: every credential and proof names its issuer twice (profile, verification
# method), and parsing and quoting the base URL each time was 3 % of issuance's CPU in the
# e2e profile (issue 12). A few entries per provider at most.
@lru_cache(maxsize=4096)
def issuer_id(base_url: str, provider_id: str) -> str:
    """The provider's did:web under the registry's public origin (ADR 22); the registry
    serves its DID document at `{base_url}/issuers/{provider_id}/did.json`. did:web is
    https only: behind a plain-http public URL (a bare docker compose) the issuer is its
    profile URL, as before ADR 22, which our verifier accepts and wallets do not."""
    if not base_url.startswith("https://"):
        return issuer_url(base_url, provider_id)
    return did_web(base_url, "issuers", provider_id)


def issuer_url(base_url: str, provider_id: str) -> str:
    """Where the provider's profile is served (the issuer id before ADR 22)."""
    return f"{base_url}/issuers/{provider_id}"


def verification_method(base_url: str, key: SigningKey) -> str:
    """The key's id in the issuer's DID document (served by the registry)."""
    return f"{issuer_id(base_url, key.provider_id)}#{key.key_id}"


def sign(doc: dict[str, Any], key: SigningKey, *, base_url: str,
         cryptosuite: str) -> dict[str, Any]:
    return proofs.sign(doc, key.private, verification_method(base_url, key),
                       cryptosuite=cryptosuite)


def issuer_profile(provider: Provider, base_url: str) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "id": issuer_id(base_url, provider.id),
        "type": ["Profile"],
        "name": provider.name.en,
        "url": provider.url,
        "email": provider.email,
        "address": {
            "type": ["Address"],
            "addressCountry": COUNTRY["CA"],
            "addressCountryCode": "CA",
            "addressRegion": provider.jurisdiction,
        },
    }
    _fr(profile, "name", provider.name)
    return profile


def _fr(target: dict[str, Any], term: str, text: Text | None) -> None:
    if text is not None and text.fr:
        target[term + "Fr"] = text.fr
