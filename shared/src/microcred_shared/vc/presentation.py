"""Verify a verifiable presentation (VC-API `POST /presentations/verify`): its proofs made
by the holder for `authentication`, bound to the verifier's `challenge` and `domain`, and
every credential in it with the same checks as a credential on its own.

A presentation without a proof proves nothing about who presents it, so it does not
verify; nor does one whose proof names another challenge or domain than the verifier's
(a replayed or misdirected presentation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .contexts import VC_V1_URL, VC_V2_URL
from .proofs import verify_proofs
from .verify import (
    Check,
    DocumentResolver,
    KeyResolver,
    VerificationResult,
    as_list,
    key_owner,
    verify_credential,
)


@dataclass
class PresentationResult:
    verified: bool
    checks: dict[str, Check] = field(default_factory=dict)
    credentials: list[VerificationResult] = field(default_factory=list)

    def problems(self) -> list[str]:
        own = [f"{name}: {c.detail}" for name, c in self.checks.items() if c.ok is not True]
        for n, result in enumerate(self.credentials):
            if not result.verified:
                own += [f"credential {n + 1}: {p}"
                        for p in result.problems() or [f"status {result.status}"]]
        return own


def _holder_id(vp: dict[str, Any]) -> Any:
    holder = vp.get("holder")
    return holder.get("id") if isinstance(holder, dict) else holder


def _shape(vp: dict[str, Any]) -> Check:
    context = vp.get("@context")
    if not isinstance(context, list) or not context or context[0] not in (VC_V2_URL,
                                                                         VC_V1_URL):
        return Check(False, f"@context must be an array starting with {VC_V2_URL} "
                            f"(or {VC_V1_URL})")
    types = as_list(vp.get("type"))
    if "VerifiablePresentation" not in types:
        return Check(False, "type must include VerifiablePresentation")
    return Check(True, "a VerifiablePresentation")


def _binding(proofs: list[Any], name: str, expected: str | None) -> Check:
    """Every proof carries the verifier's `challenge` (or one of its `domain`s)."""
    if expected is None:
        return Check(True, f"no {name} was asked for")
    for n, proof in enumerate(proofs):
        given = proof.get(name) if isinstance(proof, dict) else None
        values = given if isinstance(given, list) and name == "domain" else [given]
        if expected not in values:
            return Check(False, f"proof {n + 1} has {name} {given!r}, not {expected!r}")
    return Check(True, f"{name} matches")


async def _holder_keys(vp: dict[str, Any], proofs: list[Any], keys: KeyResolver) -> Check:
    holder, found, problems = _holder_id(vp), [], []
    for n, proof in enumerate(proofs):
        if isinstance(proof, dict) and proof.get("proofPurpose") != "authentication":
            problems.append(f"proof {n + 1} is for {proof.get('proofPurpose')!r}, "
                            "not authentication")
            continue
        owner, detail = await key_owner(proof, vp, keys)
        if owner is None:
            problems.append(f"proof {n + 1}: {detail}")
        elif holder is not None and owner != holder:
            problems.append(f"proof {n + 1} is by {owner}, not by the holder {holder}")
        else:
            found.append(detail)
    if problems:
        return Check(False, "; ".join(problems))
    return Check(True, ", ".join(found))


async def verify_presentation(vp: dict[str, Any], *, resolve_document: DocumentResolver,
                              challenge: str | None = None, domain: str | None = None,
                              now: datetime | None = None) -> PresentationResult:
    now = now or datetime.now(UTC)
    keys = KeyResolver(resolve_document)
    checks = {"presentation": _shape(vp)}
    proofs = as_list(vp.get("proof")) if vp.get("proof") is not None else []
    if not proofs:
        checks["proof"] = Check(False, "the presentation has no proof (by its holder)")
    else:
        results = await verify_proofs(vp, keys.public_key)
        bad = [f"proof {n + 1}: {r.reason}" for n, r in enumerate(results) if not r.ok]
        checks["proof"] = Check(not bad, "; ".join(bad) or
                                f"{len(results)} proof(s) valid")
        checks["holder_key"] = await _holder_keys(vp, proofs, keys)
        checks["challenge"] = _binding(proofs, "challenge", challenge)
        checks["domain"] = _binding(proofs, "domain", domain)
    credentials: list[VerificationResult] = []
    embedded = as_list(vp.get("verifiableCredential")) if vp.get(
        "verifiableCredential") is not None else []
    for n, credential in enumerate(embedded):
        if not isinstance(credential, dict):
            checks[f"credential_{n + 1}"] = Check(
                False, "only Data Integrity secured credentials (JSON objects) are verified")
            continue
        credentials.append(await verify_credential(credential,
                                                   resolve_document=resolve_document, now=now))
    verified = (all(c.ok for c in checks.values())
                and all(r.verified for r in credentials))
    return PresentationResult(verified, checks, credentials)
