"""Controller documents: the documents that list an issuer's keys.

Our issuers are did:web DIDs (ADR 22): the DID document at
`{PUBLIC_BASE_URL}/issuers/{provider_id}/did.json` (`did_document`), key ids
`{did}#{key_id}`. Credentials issued before name `{PUBLIC_BASE_URL}/issuers/{provider_id}`,
served as the issuer profile *and* controller document of the same keys, key ids
`{that URL}#{key_id}`.
The DID v1 context comes first on purpose: the JavaScript verifier then reads
`assertionMethod` directly instead of JSON-LD-framing the document (which would need
contexts we do not vendor). Retired keys stay listed with `expires`, compromised ones get
`revoked` (see `verify` for what each means).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .contexts import MULTIKEY_V1_URL
from .keys import DID_CONTEXT_URL, multikey_encode
from .proofs import format_datetime


@dataclass(frozen=True)
class IssuerKey:
    key_id: str
    public_key: Ed25519PublicKey
    expires: datetime | None = None
    revoked: datetime | None = None


def verification_method_id(controller_id: str, key_id: str) -> str:
    return f"{controller_id}#{key_id}"


def controller_document(controller_id: str, keys: list[IssuerKey],
                        **profile: Any) -> dict[str, Any]:
    """The controller document; `profile` adds display fields (name, url, …)."""
    methods = []
    for key in keys:
        vm: dict[str, Any] = {
            "id": verification_method_id(controller_id, key.key_id),
            "type": "Multikey",
            "controller": controller_id,
            "publicKeyMultibase": multikey_encode(key.public_key),
        }
        if key.expires is not None:
            vm["expires"] = format_datetime(key.expires)
        if key.revoked is not None:
            vm["revoked"] = format_datetime(key.revoked)
        methods.append(vm)
    return {
        "@context": [DID_CONTEXT_URL, MULTIKEY_V1_URL],
        "id": controller_id,
        **profile,
        "verificationMethod": methods,
        "assertionMethod": [vm["id"] for vm in methods],
    }


def did_document(did: str, keys: list[IssuerKey], *,
                 also_known_as: list[str] | None = None) -> dict[str, Any]:
    """A DID document: only DID Core and Multikey terms (wallets resolve and JSON-LD
    process it; the issuer's profile lives in the credential and at `also_known_as`).

    A compromised key is left out, not marked: verifiers of the wallet ecosystem ignore a
    method's `revoked` and would go on accepting its signatures, while a method that is not
    in the document verifies nowhere. Retired keys stay, with `expires` (ADR 8)."""
    kept = [k for k in keys if k.revoked is None]
    return controller_document(did, kept, controller=did,
                               **({"alsoKnownAs": also_known_as} if also_known_as else {}))
