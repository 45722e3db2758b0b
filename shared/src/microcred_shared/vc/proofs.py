"""Data Integrity proofs: `DataIntegrityProof` with eddsa-rdfc-2022 and eddsa-jcs-2022.

Per vc-di-eddsa: hashData = sha256(canonical proof configuration) ‖ sha256(canonical
document without proof); the Ed25519 signature over it is the proofValue, 'z' + base58btc.
The proof configuration carries the document's @context; with jcs the attached proof keeps
that @context (the JCS bytes would otherwise not say which vocabulary they were in).
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyld import jsonld

from . import canon
from .contexts import DATA_INTEGRITY_V2_URL, VC_V2_URL
from .errors import CanonicalizationError, VcError
from .keys import multibase_decode, multibase_encode

RDFC = "eddsa-rdfc-2022"
JCS = "eddsa-jcs-2022"
CRYPTOSUITES = (RDFC, JCS)
PROOF_TYPE = "DataIntegrityProof"
_OB_TYPES = frozenset({"OpenBadgeCredential", "AchievementCredential"})

KeyResolver = Callable[[str], "Ed25519PublicKey | Awaitable[Ed25519PublicKey]"]


@dataclass(frozen=True)
class ProofResult:
    ok: bool
    reason: str | None = None
    verification_method: str | None = None
    cryptosuite: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def format_datetime(moment: datetime) -> str:
    """XML Schema dateTime in UTC with second precision, as the JS stack writes it."""
    if moment.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_rdfc(document: dict[str, Any], *, fast: bool = True,
                   allow_issuer_dependent: bool = False) -> str:
    return _canonical(document, fast, allow_issuer_dependent, utf8=False)  # type: ignore[return-value]


def canonical_rdfc_utf8(document: dict[str, Any], *, fast: bool = True,
                        allow_issuer_dependent: bool = False) -> bytes:
    """`canonical_rdfc(...).encode("utf-8")`: what a proof hashes (the fast path builds
    the bytes without the text, issue 12)."""
    return _canonical(document, fast, allow_issuer_dependent, utf8=True)  # type: ignore[return-value]


_fast_path: Any = None


def _fastcanon() -> Any:
    """The fast path's module, imported on first use (it is optional) and then held: an
    import statement per call was ~0.8 µs of every proof (issue 12)."""
    global _fast_path
    if _fast_path is None:
        from . import fastcanon

        _fast_path = fastcanon
    return _fast_path


def _canonical(document: dict[str, Any], fast: bool, allow_issuer_dependent: bool, *,
               utf8: bool) -> str | bytes:
    try:
        if fast:
            fastcanon = _fast_path or _fastcanon()
            if utf8:
                return fastcanon.rdfc_fast_utf8(
                    document, allow_issuer_dependent=allow_issuer_dependent)
            return fastcanon.rdfc_fast(
                document, allow_issuer_dependent=allow_issuer_dependent)
        text = canon.rdfc_reference(document, allow_issuer_dependent=allow_issuer_dependent)
        return text.encode("utf-8") if utf8 else text
    except VcError:
        raise
    except jsonld.JsonLdError as exc:  # the fast path meets pyld's errors directly
        raise canon.unwrap(exc) from exc
    except (LookupError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # pyld fails on some valid-looking contexts with its own internal errors (e.g. a
        # KeyError for [v2, {"@vocab": null}]): an input we cannot process, not a crash.
        raise CanonicalizationError(
            "the JSON-LD processor cannot process this document's @context "
            f"({canon.describe(exc)})") from exc


_now_cache: tuple[int, str] = (-1, "")


def _now_text() -> str:
    """`format_datetime(datetime.now(UTC))`, formatted once per second (every credential
    signed in that second carries the same `created`)."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
    return _now_cache[1]


_ASTRAL_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")
_CONFIG_HASHES: dict[tuple[Any, ...], bytes] = {}
_CONFIG_HASHES_MAX = 256


def _config_key(config: dict[str, Any]) -> tuple[Any, ...] | None:
    """A hashable key for a proof configuration of strings and a list of context URLs,
    or None (an inline context, a nested value): such a config is not cached."""
    key: list[Any] = []
    for name, value in config.items():
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                return None
            value = ("[]", *value)
        elif not isinstance(value, str):
            return None
        key.append((name, value))
    return tuple(key)


def _rdfc_config_hash(proof_config: dict[str, Any], fast: bool) -> bytes:
    """sha256 of the canonical proof configuration. All the credentials signed in one
    second by one key share it (it holds only the context, key, purpose and `created` at
    second precision), so it is canonicalised once per second, not once per credential."""
    key = _config_key(proof_config) if fast else None
    if key is not None and (digest := _CONFIG_HASHES.get(key)) is not None:
        return digest
    digest = hashlib.sha256(canonical_rdfc(proof_config, fast=fast).encode("utf-8")).digest()
    if key is not None:
        if len(_CONFIG_HASHES) >= _CONFIG_HASHES_MAX:
            _CONFIG_HASHES.clear()
        _CONFIG_HASHES[key] = digest
    return digest


def hash_data(unsecured: dict[str, Any], proof_config: dict[str, Any], cryptosuite: str, *,
              fast: bool = True, allow_issuer_dependent: bool = False) -> bytes:
    """sha256(canonical proof config) ‖ sha256(canonical document)."""
    if cryptosuite == RDFC:
        config_hash = _rdfc_config_hash(proof_config, fast)
        doc_nquads = canonical_rdfc_utf8(unsecured, fast=fast,
                                         allow_issuer_dependent=allow_issuer_dependent)
        # i.e. signing: only sign what JS verifiers can check. Only a character beyond
        # U+FFFF (4 UTF-8 bytes, lead byte F0-F4) can make them order the lines otherwise.
        # A search per lead byte (memchr, C speed): a regex scan of the document was ~10 µs.
        if not allow_issuer_dependent and not doc_nquads.isascii() \
                and any(lead in doc_nquads for lead in _ASTRAL_LEADS):
            canon.check_javascript_sort_order(doc_nquads.decode("utf-8"))
        return config_hash + hashlib.sha256(doc_nquads).digest()
    if cryptosuite == JCS:
        if not allow_issuer_dependent:  # signing: refuse what other stacks render differently
            canon.check_values(unsecured)
        config_bytes, doc_bytes = canon.jcs(proof_config), canon.jcs(unsecured)
        return hashlib.sha256(config_bytes).digest() + hashlib.sha256(doc_bytes).digest()
    raise VcError(f"unsupported cryptosuite {cryptosuite!r}; use one of {CRYPTOSUITES}")


def with_suite_context(document: dict[str, Any]) -> dict[str, Any]:
    """`document` whose @context defines DataIntegrityProof: VC 2.0's does; a VC 1.1
    document gets the Data Integrity context appended, as the JavaScript stack does
    (jsonld-signatures' addSuiteContext), so both sign and verify the same bytes."""
    context = document.get("@context")
    items = context if isinstance(context, list) else [context]
    if VC_V2_URL in items or DATA_INTEGRITY_V2_URL in items:
        return document
    return {**document, "@context": [*items, DATA_INTEGRITY_V2_URL]}


def _without_proof(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "proof"}


def sign(document: dict[str, Any], private_key: Ed25519PrivateKey, verification_method: str, *,
         cryptosuite: str = RDFC, created: datetime | None = None,
         proof_purpose: str = "assertionMethod", fast: bool = True,
         proof_as_list: bool | None = None, proof_id: str | None = None,
         previous_proof: str | list[str] | None = None,
         challenge: str | None = None, domain: str | None = None) -> dict[str, Any]:
    """A new document with a DataIntegrityProof added (the input is not modified).

    A document that already has a proof gets a proof set: each proof signs the document
    without any proof, as Data Integrity specifies for independent proofs. With
    `previous_proof` (the `id` of one or more proofs already on it) the new proof is
    chained: it signs the document with those proofs attached (Data Integrity, "Add
    Proof Set/Chain"). `challenge` and `domain` bind a presentation's proof to a request.
    `proof_as_list=None` writes `proof` as an array for Open Badges credentials (the OB
    3.0 JSON Schema accepts only an array) and as an object otherwise; verifiers accept
    both, and the bytes signed do not depend on it.
    """
    if "@context" not in document:
        raise VcError("a document to sign needs an @context")
    unsecured = with_suite_context(_without_proof(document))
    existing = document.get("proof")
    previous = [] if existing is None else existing if isinstance(existing, list) else [existing]
    options: dict[str, Any] = {
        **({"id": proof_id} if proof_id is not None else {}),
        "type": PROOF_TYPE,
        "cryptosuite": cryptosuite,
        "created": format_datetime(created) if created is not None else _now_text(),
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
        **({"challenge": challenge} if challenge is not None else {}),
        **({"domain": domain} if domain is not None else {}),
        **({"previousProof": previous_proof} if previous_proof is not None else {}),
    }
    config = {"@context": unsecured["@context"], **options}
    signed_over = unsecured
    if previous_proof is not None:
        signed_over = {**unsecured, "proof": chained_proofs(previous, previous_proof)}
    signature = private_key.sign(hash_data(signed_over, config, cryptosuite, fast=fast))
    proof = config if cryptosuite == JCS else dict(options)
    proof["proofValue"] = multibase_encode(signature)
    if existing is None:
        if proof_as_list is None:
            types = document.get("type")
            proof_as_list = any(isinstance(t, str) and t in _OB_TYPES
                                for t in (types if isinstance(types, list) else [types]))
        return {**unsecured, "proof": [proof] if proof_as_list else proof}
    return {**unsecured, "proof": [*previous, proof]}


def chained_proofs(proofs: list[Any], previous_proof: Any) -> list[dict[str, Any]]:
    """The proofs a chained proof names in `previousProof` (one id or a list of ids), in
    the order named: what the chained proof signed along with the document. VcError when
    an id is not in the set (a broken chain)."""
    ids = previous_proof if isinstance(previous_proof, list) else [previous_proof]
    if not ids or not all(isinstance(i, str) for i in ids):
        raise VcError("previousProof must be a proof id or a list of proof ids")
    by_id = {p.get("id"): p for p in proofs if isinstance(p, dict) and "id" in p}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise VcError(f"previousProof {', '.join(map(str, missing))} is not in the proof set "
                      "(a broken proof chain)")
    return [by_id[i] for i in ids]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _proof_config(document: dict[str, Any], proof: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(proof configuration, cryptosuite) rebuilt from an attached proof, or VcError."""
    if proof.get("type") != PROOF_TYPE:
        raise VcError(f"proof type {proof.get('type')!r} is not {PROOF_TYPE}")
    suite = proof.get("cryptosuite")
    if suite not in CRYPTOSUITES:
        raise VcError(f"unsupported cryptosuite {suite!r}")
    for name in ("verificationMethod", "proofPurpose", "proofValue"):
        if not isinstance(proof.get(name), str):
            raise VcError(f"proof has no {name}")
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    if suite == RDFC:
        config = with_suite_context({**config, "@context": document.get("@context")})
    elif "@context" in config:
        # jcs: the document's @context must start with the proof's, in order.
        doc_ctx, proof_ctx = _as_list(document.get("@context")), _as_list(config["@context"])
        if doc_ctx[: len(proof_ctx)] != proof_ctx:
            raise VcError("the proof's @context does not match the document's")
    return config, str(suite)


# A stored credential's bytes never change: what verifying its proofs computes from the
# bytes alone — each proof's hashData, the hashes of its canonical forms — is kept by the
# digest of the JSON text the document was parsed from (`source_digest`) and the proof's
# place. A signature found valid is kept by (public key, signature, hashData): a pure
# function of the three. Neither depends on anything a status change, a key rotation or
# revocation (checked by the caller against the controller document on every
# verification) or the clock can change; a tampered document is other bytes, other keys.
_HASHES: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()
_GOOD_SIGNATURES: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
MEMO_SIZE = 8192


def _remember(memo: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    memo[key] = value
    if len(memo) > MEMO_SIZE:
        memo.popitem(last=False)


async def verify_proof(document: dict[str, Any], resolve_public_key: KeyResolver, *,
                       fast: bool = True, source_digest: bytes | None = None) -> ProofResult:
    """Check every attached DataIntegrityProof; the first failure is the result.
    `source_digest`: SHA-256 of the JSON text `document` was parsed from, when the caller
    has it (a stored credential): what depends on those bytes alone is computed once."""
    results = await verify_proofs(document, resolve_public_key, fast=fast,
                                  source_digest=source_digest)
    for result in results:
        if not result.ok:
            return result
    return results[-1]


async def verify_proofs(document: dict[str, Any], resolve_public_key: KeyResolver, *,
                        fast: bool = True, source_digest: bytes | None = None,
                        ) -> list[ProofResult]:
    """One result per attached proof, in order (Data Integrity "Verify Proof Sets and
    Chains"): a proof without `previousProof` is checked against the document without
    any proof; a chained one against the document carrying the proofs it names. A
    document without proofs gives one failed result."""
    proofs = document.get("proof")
    if not proofs:
        return [ProofResult(False, "document has no proof")]
    listed = proofs if isinstance(proofs, list) else [proofs]
    return [await _verify_one(document, proof, listed, resolve_public_key, fast,
                              None if source_digest is None else (source_digest, n))
            for n, proof in enumerate(listed)]


async def _verify_one(document: dict[str, Any], proof: Any, listed: list[Any],
                      resolve: KeyResolver, fast: bool,
                      memo: tuple[bytes, int] | None = None) -> ProofResult:
    if not isinstance(proof, dict):
        return ProofResult(False, "proof is not an object")
    vm, suite = proof.get("verificationMethod"), proof.get("cryptosuite")
    unsecured = _without_proof(document)
    try:
        config, suite = _proof_config(document, proof)
        signature = multibase_decode(proof["proofValue"])
        if "previousProof" in proof:
            unsecured = {**unsecured, "proof": chained_proofs(listed, proof["previousProof"])}
    except VcError as exc:
        return ProofResult(False, str(exc), vm if isinstance(vm, str) else None,
                           suite if isinstance(suite, str) else None)
    try:
        key = resolve(vm)  # type: ignore[arg-type]
        if inspect.isawaitable(key):
            key = await key
    except Exception as exc:  # noqa: BLE001 - whatever the resolver raises, the proof fails
        return ProofResult(False, f"cannot resolve {vm}: {exc}", vm, suite)
    data = _HASHES.get(memo) if memo is not None and fast else None
    if data is None:
        try:
            data = hash_data(unsecured, config, suite, fast=fast, allow_issuer_dependent=True)
        except (VcError, ValueError, KeyError, LookupError, TypeError) as exc:
            return ProofResult(False, str(exc), vm, suite)
        if memo is not None and fast:
            _remember(_HASHES, memo, data)
    seen = (key.public_bytes_raw(), signature, data) if isinstance(key, Ed25519PublicKey) \
        else None
    if seen is None or seen not in _GOOD_SIGNATURES:
        try:
            key.verify(signature, data)
        except InvalidSignature:
            return ProofResult(False, "signature does not match the document", vm, suite)
        if seen is not None:
            _remember(_GOOD_SIGNATURES, seen, None)
    return ProofResult(True, None, vm, suite)


def verify_proof_sync(document: dict[str, Any],
                      resolve_public_key: Callable[[str], Ed25519PublicKey], *,
                      fast: bool = True) -> ProofResult:
    """verify_proof for a synchronous key resolver (no event loop needed)."""
    coro = verify_proof(document, resolve_public_key, fast=fast)
    try:
        coro.send(None)
    except StopIteration as done:
        result: ProofResult = done.value
        return result
    coro.close()
    raise VcError("the key resolver is asynchronous: await verify_proof instead")
