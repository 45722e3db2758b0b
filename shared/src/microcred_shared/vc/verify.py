"""Verify a credential: proof, issuer key, status, validity window, OB 3.0 schema.

Every check reports on its own, so a verifier page can say *why*. A status that cannot be
established (list unreachable, its proof or issuer wrong) is "unknown", never "valid".

Key validity convention (controller documents we publish, Multikey terms):
- a rotated-out key stays listed, with `expires` = the moment it was retired; credentials
  whose validFrom and proof `created` are before that moment still verify;
- a compromised key gets `revoked`; then no signature by it verifies (as in the JS stack).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import didweb, related, statuslist
from .errors import VcError
from .keys import did_key_document, multikey_decode
from .proofs import ProofResult, verify_proof
from .schema import is_open_badge, schema_problems
from .vcdm import is_v1, parse_datetime, valid_from, valid_until

DocumentResolver = Callable[[str], Awaitable[dict[str, Any]]]
KEY_TYPES = ("Multikey", "Ed25519VerificationKey2020")


@dataclass(frozen=True)
class Check:
    ok: bool | None  # None: could not be established
    detail: str = ""


@dataclass
class VerificationResult:
    verified: bool
    status: str  # valid | revoked | suspended | unknown | expired | not-yet-valid | invalid
    checks: dict[str, Check] = field(default_factory=dict)

    def problems(self) -> list[str]:
        return [f"{name}: {c.detail}" for name, c in self.checks.items() if c.ok is not True]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


_as_list = as_list


def issuer_id(document: dict[str, Any]) -> Any:
    issuer = document.get("issuer")
    return issuer.get("id") if isinstance(issuer, dict) else issuer


class KeyResolver:
    """Verification methods through their controller documents, fetched once per run."""

    def __init__(self, resolve_document: DocumentResolver) -> None:
        self._resolve = resolve_document
        self._documents: dict[str, dict[str, Any]] = {}

    async def controller(self, url: str) -> dict[str, Any]:
        if url not in self._documents:
            if url.startswith("did:key:"):
                document = did_key_document(url)
            elif url.startswith(didweb.PREFIX):
                document = await self._resolve(didweb.document_url(url))
                if isinstance(document, dict) and document.get("id") != url:
                    raise VcError(f"the DID document of {url} names {document.get('id')!r}")
            else:
                document = await self._resolve(url)
            if not isinstance(document, dict):
                raise VcError(f"controller document {url} is not a JSON object")
            self._documents[url] = document
        return self._documents[url]

    async def assertion_keys(self, controller_id: str) -> set[str]:
        """publicKeyMultibase of every assertion key `controller_id` lists, unrevoked."""
        document = await self.controller(controller_id)
        listed = {e.get("id") if isinstance(e, dict) else e
                  for e in _as_list(document.get("assertionMethod"))}
        return {vm["publicKeyMultibase"] for vm in _as_list(document.get("verificationMethod"))
                if isinstance(vm, dict) and vm.get("id") in listed and "revoked" not in vm
                and isinstance(vm.get("publicKeyMultibase"), str)}

    async def method(self, vm_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(verification method, controller document) for `vm_id`."""
        if not isinstance(vm_id, str) or "#" not in vm_id:
            raise VcError(f"verification method {vm_id!r} is not a URL with a fragment")
        document = await self.controller(vm_id.split("#", 1)[0])
        for vm in _as_list(document.get("verificationMethod")):
            if isinstance(vm, dict) and vm.get("id") == vm_id:
                return vm, document
        raise VcError(f"{vm_id} is not in its controller document: never a key of its "
                      "controller, or withdrawn by it as compromised")

    async def public_key(self, vm_id: str) -> Ed25519PublicKey:
        vm, _ = await self.method(vm_id)
        if vm.get("type") not in KEY_TYPES or "publicKeyMultibase" not in vm:
            raise VcError(f"{vm_id} is not an Ed25519 Multikey")
        return _public_key(vm["publicKeyMultibase"])


@lru_cache(maxsize=4096)
def _public_key(multibase: str) -> Ed25519PublicKey:
    """multikey_decode, once per key (a pure function of the string; errors not cached)."""
    return multikey_decode(multibase)


# A status list serves up to 131,072 credentials: its proof is checked once per distinct
# (list, keys) pair, not once per credential. Its proof result is a pure function of the
# list's JSON and of the verification methods its proofs name, so the cache key is exactly
# those (the list's JSON digest, each method's JSON as resolved in this verification): a
# re-signed list, a key rotated, revoked or withdrawn, is a new key and checked afresh.
# The controller documents are still resolved on every verification.
_LIST_PROOFS: OrderedDict[tuple[str, str], ProofResult] = OrderedDict()
LIST_PROOF_CACHE = 1024


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


async def _list_proof(listing: dict[str, Any], keys: KeyResolver) -> ProofResult:
    try:
        methods = [(await keys.method(p["verificationMethod"]))[0]
                   for p in _as_list(listing.get("proof")) if isinstance(p, dict)]
        key = (_digest(listing), _digest(methods))
    except Exception:  # noqa: BLE001 - not cacheable: verify_proof reports what is wrong
        return await verify_proof(listing, keys.public_key)
    found = _LIST_PROOFS.get(key)
    if found is not None:
        _LIST_PROOFS.move_to_end(key)
        return found
    result = await verify_proof(listing, keys.public_key)
    _LIST_PROOFS[key] = result
    if len(_LIST_PROOFS) > LIST_PROOF_CACHE:
        _LIST_PROOFS.popitem(last=False)
    return result


@lru_cache(maxsize=256)
def _bits(encoded: str) -> bytes:
    """decode_list once per encodedList (pure; errors are raised again, never cached)."""
    return bytes(statuslist.decode_list(encoded))


def _first_proof(document: dict[str, Any]) -> dict[str, Any]:
    proofs = _as_list(document.get("proof"))
    if not proofs or not isinstance(proofs[0], dict):
        raise VcError("no proof")
    return proofs[0]


def _subject_ids(document: dict[str, Any]) -> set[str]:
    return {s["id"] for s in _as_list(document.get("credentialSubject"))
            if isinstance(s, dict) and isinstance(s.get("id"), str)}


async def key_owner(proof: Any, document: dict[str, Any], keys: KeyResolver,
                  ) -> tuple[str | None, str]:
    """(who controls the key of `proof`, why not) — who is None when the key does not
    stand: unresolvable, not listed for the proof's purpose, revoked, or retired before
    the document was issued."""
    if not isinstance(proof, dict):
        return None, "proof is not an object"
    vm_id, purpose = proof.get("verificationMethod"), proof.get("proofPurpose")
    if not isinstance(purpose, str) or purpose not in ("assertionMethod", "authentication"):
        return None, f"proofPurpose is {purpose!r}"
    try:
        vm, controller = await keys.method(vm_id)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any resolver failure is a failed check
        return None, f"cannot resolve the verification method: {exc}"
    owner = controller.get("id")
    if vm.get("controller") != owner:
        return None, f"{vm_id} names the controller {vm.get('controller')!r}, not {owner!r}"
    listed = [e.get("id") if isinstance(e, dict) else e
              for e in _as_list(controller.get(purpose))]
    if vm_id not in listed:
        return None, f"{vm_id} is not an {purpose} method of {owner}"
    if "revoked" in vm:
        return None, f"{vm_id} was revoked at {vm['revoked']}"
    if "expires" in vm:
        try:
            expires = parse_datetime(vm["expires"])
            moments = [parse_datetime(v) for v in (valid_from(document),
                                                   proof.get("created")) if isinstance(v, str)]
        except (ValueError, TypeError) as exc:
            return None, f"bad date: {exc}"
        if not moments or any(m >= expires for m in moments):
            return None, f"{vm_id} was retired at {vm['expires']}, before this was issued"
    return str(owner), str(vm_id)


async def check_issuer_key(document: dict[str, Any], keys: KeyResolver) -> Check:
    """Every proof's key stands for its purpose, and belongs to the issuer or (as an
    additional proof) to a subject of the credential; at least one is the issuer's, made
    for assertionMethod. With proof sets and chains each proof is judged on its own."""
    proofs = _as_list(document.get("proof"))
    if not proofs:
        return Check(False, "no proof")
    issuer = issuer_id(document)
    subjects = _subject_ids(document)
    by_issuer, problems = [], []
    for n, proof in enumerate(proofs):
        where = f"proof {n + 1}: " if len(proofs) > 1 else ""
        owner, detail = await key_owner(proof, document, keys)
        if owner is None:
            problems.append(where + detail)
        elif owner == issuer and proof.get("proofPurpose") == "assertionMethod":
            by_issuer.append(detail)
        elif owner != issuer and owner not in subjects:
            problems.append(f"{where}{detail} is controlled by {owner!r}, not by the issuer "
                            f"{issuer!r}")
    if problems:
        return Check(False, "; ".join(problems))
    if not by_issuer:
        return Check(False, f"no proof is made for assertionMethod by the issuer {issuer!r}")
    return Check(True, ", ".join(by_issuer))


def check_window(document: dict[str, Any], now: datetime) -> tuple[Check, str]:
    try:
        start, end = valid_from(document), valid_until(document)
        if isinstance(start, str) and parse_datetime(start) > now:
            return Check(False, f"not valid before {start}"), "not-yet-valid"
        if isinstance(end, str) and parse_datetime(end) < now:
            return Check(False, f"expired at {end}"), "expired"
    except ValueError as exc:
        return Check(False, str(exc)), "invalid"
    return Check(True, "within validFrom/validUntil"), "valid"


async def _status_of(document: dict[str, Any], entry: Any, resolve: DocumentResolver,
                     keys: KeyResolver, now: datetime) -> tuple[str, str]:
    """('valid'|'revoked'|'suspended'|'unknown', why) for one credentialStatus entry."""
    if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
        return "unknown", "unsupported credentialStatus type"
    purpose, index = entry.get("statusPurpose"), entry.get("statusListIndex")
    if purpose not in statuslist.PURPOSES or not (isinstance(index, str) and index.isdigit()):
        return "unknown", "statusPurpose or statusListIndex is malformed"
    url = entry.get("statusListCredential")
    try:
        listing = await resolve(url)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - unreachable list: status unknown
        return "unknown", f"cannot fetch {url}: {exc}"
    proof = await _list_proof(listing, keys)
    if not proof.ok:
        return "unknown", f"status list {url} has a bad proof: {proof.reason}"
    key = await check_issuer_key(listing, keys)
    if not key.ok or not await _same_issuer(listing, document, keys):
        return "unknown", f"status list {url} is not signed by the credential's issuer"
    subject = listing.get("credentialSubject") or {}
    if ("BitstringStatusListCredential" not in _as_list(listing.get("type"))
            or subject.get("type") != "BitstringStatusList"
            or subject.get("statusPurpose") != purpose):
        return "unknown", f"{url} is not a {purpose} BitstringStatusListCredential"
    window, _ = check_window(listing, now)
    if not window.ok:
        return "unknown", f"status list {url}: {window.detail}"
    try:
        encoded = subject.get("encodedList")
        bits = _bits(encoded) if isinstance(encoded, str) else statuslist.decode_list(encoded)
        bit = statuslist.get_bit(bits, int(index))
    except VcError as exc:
        return "unknown", str(exc)
    if not bit:
        return "valid", f"{purpose} bit {index} is clear"
    return ("revoked" if purpose == "revocation" else "suspended"), f"{purpose} bit {index} set"


async def _same_issuer(listing: dict[str, Any], document: dict[str, Any],
                       keys: KeyResolver) -> bool:
    """The list's issuer is the credential's: the same id, or (an issuer known by two ids:
    its https controller URL on credentials issued before did:web, its did:web after, ADR
    22) the list's signing key is one of the credential issuer's own assertion keys."""
    if issuer_id(listing) == issuer_id(document):
        return True
    try:
        vm, _ = await keys.method(_first_proof(listing).get("verificationMethod"))  # type: ignore[arg-type]
        return vm.get("publicKeyMultibase") in await keys.assertion_keys(issuer_id(document))
    except Exception:  # noqa: BLE001 - cannot establish it: not the same issuer
        return False


async def check_status(document: dict[str, Any], resolve: DocumentResolver, keys: KeyResolver,
                       now: datetime) -> tuple[Check, str]:
    entries = _as_list(document.get("credentialStatus"))
    if not entries:
        return Check(True, "no credentialStatus"), "valid"
    outcomes = [await _status_of(document, e, resolve, keys, now) for e in entries]
    for worst in ("revoked", "suspended", "unknown"):
        reasons = [why for state, why in outcomes if state == worst]
        if reasons:
            return Check(None if worst == "unknown" else False, "; ".join(reasons)), worst
    return Check(True, "; ".join(why for _, why in outcomes)), "valid"


def check_related(value: Any) -> Check:
    """relatedResource well formed, and each digest right for the resources we hold (our
    vendored contexts); others cannot be compared without fetching them, and are not."""
    shape = related.problems(value)
    if shape:
        return Check(False, "; ".join(shape))
    wrong, compared = related.mismatches(value)
    if wrong:
        return Check(False, "; ".join(wrong))
    total = len(value) if isinstance(value, list) else 1
    return Check(True, f"{compared} of {total} related resources compared with their "
                       "digests (the others are not held here)")


# The schema's verdict on a stored credential, by the SHA-256 of its JSON text (a pure
# function of those bytes, like the proofs' hashes: vc.proofs._HASHES).
_SCHEMA_VERDICTS: OrderedDict[bytes, list[str]] = OrderedDict()
SCHEMA_VERDICTS = 8192


def _schema_problems(document: dict[str, Any], digest: bytes | None) -> list[str]:
    if digest is None:
        return schema_problems(document)
    found = _SCHEMA_VERDICTS.get(digest)
    if found is None:
        found = _SCHEMA_VERDICTS[digest] = schema_problems(document)
        if len(_SCHEMA_VERDICTS) > SCHEMA_VERDICTS:
            _SCHEMA_VERDICTS.popitem(last=False)
    return list(found)


async def verify_credential(document: dict[str, Any], *, resolve_document: DocumentResolver,
                            now: datetime | None = None, check_schema: bool = True,
                            source: str | None = None) -> VerificationResult:
    """All checks on `document`; `verified` only when every one passes and status is valid.
    `source`: the JSON text `document` was parsed from, when there is one (a stored
    credential): the proofs' canonical hashes and signatures and the schema's verdict,
    pure functions of those bytes (and of the key), are then computed once per text
    (vc.proofs.verify_proof)."""
    now = now or datetime.now(UTC)
    keys = KeyResolver(resolve_document)
    digest = None if source is None else hashlib.sha256(source.encode()).digest()
    proof = await verify_proof(document, keys.public_key, source_digest=digest)
    checks = {"proof": Check(proof.ok, proof.reason or f"{proof.cryptosuite} signature valid")}
    checks["issuer_key"] = await check_issuer_key(document, keys)
    checks["validity_window"], window_state = check_window(document, now)
    checks["status"], status_state = await check_status(document, resolve_document, keys, now)
    # The OB 3.0 JSON Schema we hold is the VC 2.0 one; a VC 1.1 Open Badge (as OB 3.0 was
    # first published) is checked for everything else, not against it.
    if check_schema and is_open_badge(document) and not is_v1(document):
        problems = _schema_problems(document, digest)
        checks["schema"] = Check(not problems, "; ".join(problems) or "OB 3.0 schema")
    if "relatedResource" in document:
        checks["related_resources"] = check_related(document["relatedResource"])
    failed = [n for n in ("proof", "issuer_key", "schema", "related_resources")
              if n in checks and not checks[n].ok]
    status = ("invalid" if failed else window_state if window_state != "valid"
              else status_state)
    return VerificationResult(verified=status == "valid", status=status, checks=checks)
