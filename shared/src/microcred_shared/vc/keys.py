"""Ed25519 keys as Multikey / multibase values, and local did:key resolution.

Multikey public key: 'z' + base58btc(0xed 0x01 + 32 key bytes). Secret key: 'z' +
base58btc(0x80 0x26 + 32-byte seed [+ 32-byte public key]); the 64-byte form is what
Digital Bazaar's ed25519-multikey and the 1EdTech test vector use, so both are accepted.
did:key for Ed25519 is `did:key:<public Multikey>` and its single verification method is
`did:key:<mk>#<mk>`; resolving it needs no network, so it is done here.
"""

from __future__ import annotations

from typing import Any

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from .contexts import MULTIKEY_V1_URL
from .errors import KeyFormatError

_PUB_HEADER = b"\xed\x01"
_PRIV_HEADER = b"\x80\x26"
DID_CONTEXT_URL = "https://www.w3.org/ns/did/v1"


def multibase_decode(value: str) -> bytes:
    """Decode a base58btc multibase ('z…') string."""
    if not isinstance(value, str) or not value.startswith("z") or len(value) < 2:
        raise KeyFormatError(f"not a base58btc multibase value: {value!r}")
    try:
        return base58.b58decode(value[1:])
    except ValueError as exc:
        raise KeyFormatError(f"invalid base58btc in {value!r}: {exc}") from exc


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_PAIRS = [a + b for a in _B58 for b in _B58]  # two digits per division


def b58encode(data: bytes) -> str:
    """base58btc, the bytes `base58.b58encode` gives, in ~40 % of its time: two digits per
    big-integer division (every proof value is 64 bytes: 88 digits; issue 12)."""
    n = int.from_bytes(data, "big")
    digits = []
    while n:
        n, pair = divmod(n, 58 * 58)
        digits.append(_B58_PAIRS[pair])
    # A leading zero byte is a "1"; the pairs may have put one "1" (a zero digit) too many.
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + "".join(reversed(digits)).lstrip("1")


def multibase_encode(data: bytes) -> str:
    return "z" + b58encode(data)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def multikey_encode(key: Ed25519PublicKey) -> str:
    """publicKeyMultibase for an Ed25519 public key."""
    return multibase_encode(_PUB_HEADER + public_key_bytes(key))


def multikey_decode(value: str) -> Ed25519PublicKey:
    """Ed25519 public key from a publicKeyMultibase value (refuses other key types)."""
    raw = multibase_decode(value)
    if len(raw) != 34 or raw[:2] != _PUB_HEADER:
        raise KeyFormatError(f"not an Ed25519 Multikey public key: {value!r}")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def secret_multikey_encode(key: Ed25519PrivateKey) -> str:
    """secretKeyMultibase in the 64-byte (seed ‖ public key) form used by the JS stack."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return multibase_encode(_PRIV_HEADER + seed + public_key_bytes(key.public_key()))


def secret_multikey_decode(value: str) -> Ed25519PrivateKey:
    raw = multibase_decode(value)
    if raw[:2] != _PRIV_HEADER or len(raw) not in (34, 66):
        raise KeyFormatError("not an Ed25519 Multikey secret key")
    key = Ed25519PrivateKey.from_private_bytes(raw[2:34])
    if len(raw) == 66 and public_key_bytes(key.public_key()) != raw[34:]:
        raise KeyFormatError("secret key's embedded public key does not match its seed")
    return key


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    if len(seed) != 32:
        raise KeyFormatError("an Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def did_key(key: Ed25519PublicKey) -> str:
    return "did:key:" + multikey_encode(key)


def did_key_verification_method(key: Ed25519PublicKey) -> str:
    mk = multikey_encode(key)
    return f"did:key:{mk}#{mk}"


def _did_key_multikey(url: str) -> str:
    did, _, fragment = url.partition("#")
    mk = did.removeprefix("did:key:")
    if not did.startswith("did:key:") or (fragment and fragment != mk):
        raise KeyFormatError(f"not an Ed25519 did:key verification method: {url!r}")
    return mk


def resolve_did_key(url: str) -> Ed25519PublicKey:
    """Public key of `did:key:z6Mk…` or `did:key:z6Mk…#z6Mk…`, computed locally."""
    return multikey_decode(_did_key_multikey(url))


def did_key_document(url: str) -> dict[str, Any]:
    """The DID document of an Ed25519 did:key (verification relationships as references)."""
    mk = _did_key_multikey(url)
    multikey_decode(mk)  # validate before building a document around it
    did = f"did:key:{mk}"
    vm = f"{did}#{mk}"
    return {
        "@context": [DID_CONTEXT_URL, MULTIKEY_V1_URL],
        "id": did,
        "verificationMethod": [
            {"id": vm, "type": "Multikey", "controller": did, "publicKeyMultibase": mk}
        ],
        "authentication": [vm],
        "assertionMethod": [vm],
        "capabilityDelegation": [vm],
        "capabilityInvocation": [vm],
    }
