"""Verifiable Credentials for microcred: Open Badges 3.0 credentials with Data Integrity
proofs (eddsa-rdfc-2022, eddsa-jcs-2022), Bitstring Status Lists and verification.

Everything runs offline: JSON-LD contexts are vendored (`contexts`), keys and did:key are
resolved locally, and other documents come from a resolver the caller passes in.
"""

from .contexts import MICROCRED_V1_URL, MICROCRED_VOCAB, OB_V3_URL, VC_V2_URL, document_loader
from .errors import (
    CanonicalizationError,
    ContextNotFoundError,
    KeyFormatError,
    UndefinedTermError,
    UnsafeValueError,
    VcError,
)
from .keys import (
    did_key,
    did_key_document,
    did_key_verification_method,
    multikey_decode,
    multikey_encode,
    private_key_from_seed,
    resolve_did_key,
    secret_multikey_decode,
    secret_multikey_encode,
)
from .proofs import JCS, RDFC, ProofResult, sign, verify_proof, verify_proof_sync
from .statuslist import (
    decode_list,
    encode_list,
    get_bit,
    new_list,
    set_bit,
    status_entry,
    status_list_credential,
)
from .vcdm import credential_problems
from .verify import Check, VerificationResult, verify_credential

__all__ = [
    "JCS", "MICROCRED_V1_URL", "MICROCRED_VOCAB", "OB_V3_URL", "RDFC", "VC_V2_URL",
    "CanonicalizationError", "Check", "ContextNotFoundError", "KeyFormatError", "ProofResult",
    "UndefinedTermError", "UnsafeValueError", "VcError", "VerificationResult",
    "credential_problems", "decode_list", "did_key", "did_key_document",
    "did_key_verification_method", "document_loader", "encode_list", "get_bit",
    "multikey_decode", "multikey_encode", "new_list", "private_key_from_seed",
    "resolve_did_key", "secret_multikey_decode", "secret_multikey_encode", "set_bit", "sign",
    "status_entry", "status_list_credential", "verify_credential", "verify_proof",
    "verify_proof_sync",
]
