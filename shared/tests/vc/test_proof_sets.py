"""Proof sets and proof chains (`previousProof`) per W3C Data Integrity: each proof is checked
on its own — a set's against the document without proofs, a chain's against the document
with the proofs it names — by a key its controller lists for the proof's purpose, the
issuer's (at least once) or the subject's; a broken chain or set is refused with a reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from microcred_shared.vc import controller, did_key, private_key_from_seed, verify_credential
from microcred_shared.vc.keys import did_key_verification_method
from microcred_shared.vc.proofs import JCS, RDFC, sign, verify_proofs

ISSUER = "https://issuers.example.ca/lakeshore-college"
K1, K2 = private_key_from_seed(bytes(32)), private_key_from_seed(bytes([1] * 32))
VM1 = controller.verification_method_id(ISSUER, "key-1")
VM2 = controller.verification_method_id(ISSUER, "key-2")
HOLDER = private_key_from_seed(bytes([2] * 32))
STRANGER = private_key_from_seed(bytes([3] * 32))
DOCS = {ISSUER: controller.controller_document(ISSUER, [
    controller.IssuerKey("key-1", K1.public_key()),
    controller.IssuerKey("key-2", K2.public_key())], name="Lakeshore College")}


async def resolve(url: str) -> dict[str, Any]:
    return DOCS[url]


def credential() -> dict[str, Any]:
    return {"@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"], "issuer": ISSUER,
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": did_key(HOLDER.public_key()), "name": "Ada"}}


def holder_vm() -> str:
    return did_key_verification_method(HOLDER.public_key())


async def verified(doc: dict[str, Any]) -> Any:
    return await verify_credential(doc, resolve_document=resolve)


@pytest.mark.parametrize("suite", [RDFC, JCS])
async def test_a_proof_set_by_two_issuer_keys_and_the_holder_verifies(suite: str) -> None:
    doc = sign(credential(), K1, VM1, cryptosuite=suite)
    doc = sign(doc, K2, VM2, cryptosuite=RDFC)
    doc = sign(doc, HOLDER, holder_vm(), cryptosuite=suite, proof_purpose="authentication")
    assert len(doc["proof"]) == 3
    result = await verified(doc)
    assert result.verified, result.problems()
    assert result.checks["issuer_key"].detail == f"{VM1}, {VM2}"


async def test_a_tampered_proof_in_a_set_fails_and_says_which() -> None:
    doc = sign(sign(credential(), K1, VM1), K2, VM2)
    doc["proof"][1]["created"] = "2027-01-01T00:00:00Z"
    results = await verify_proofs(doc, lambda vm: K2.public_key())
    assert [r.ok for r in results] == [False, False]  # proof 1 is not K2's either
    result = await verified(doc)
    assert result.status == "invalid"
    assert result.checks["proof"].detail == "signature does not match the document"


async def test_a_proof_by_someone_neither_issuer_nor_subject_is_refused() -> None:
    stranger = did_key_verification_method(STRANGER.public_key())
    doc = sign(sign(credential(), K1, VM1), STRANGER, stranger)
    result = await verified(doc)
    assert result.checks["proof"].ok  # the signatures are fine ...
    assert not result.checks["issuer_key"].ok  # ... but a stranger signed too
    assert "not by the issuer" in result.checks["issuer_key"].detail
    assert result.status == "invalid"


async def test_a_set_with_only_the_holders_proof_has_no_issuer_proof() -> None:
    doc = sign(credential(), HOLDER, holder_vm(), proof_purpose="authentication")
    result = await verified(doc)
    assert not result.verified
    assert "no proof is made for assertionMethod by the issuer" in (
        result.checks["issuer_key"].detail)


@pytest.mark.parametrize("suite", [RDFC, JCS])
async def test_a_proof_chain_verifies_and_a_broken_one_is_refused_with_a_reason(
        suite: str) -> None:
    first = sign(credential(), K1, VM1, cryptosuite=suite, proof_id="urn:uuid:proof-1")
    chain = sign(first, HOLDER, holder_vm(), cryptosuite=suite, proof_id="urn:uuid:proof-2",
                 previous_proof="urn:uuid:proof-1", proof_purpose="authentication")
    assert chain["proof"][1]["previousProof"] == "urn:uuid:proof-1"
    result = await verified(chain)
    assert result.verified, result.problems()

    # The chained proof signed proof 1 too: without it the chain is broken ...
    cut = copy.deepcopy(chain)
    cut["proof"] = [cut["proof"][1]]
    result = await verified(cut)
    assert not result.verified
    assert "previousProof urn:uuid:proof-1 is not in the proof set" in (
        result.checks["proof"].detail)
    # ... and another valid issuer proof under the same id does not take its place.
    swapped = copy.deepcopy(chain)
    other = sign(credential(), K2, VM2, cryptosuite=suite, proof_id="urn:uuid:proof-1")
    swapped["proof"][0] = other["proof"]
    results = await verify_proofs(swapped, lambda vm: (
        K2 if vm == VM2 else HOLDER).public_key())
    assert results[0].ok and not results[1].ok
    assert results[1].reason == "signature does not match the document"


def test_chaining_to_a_proof_that_is_not_there_is_refused_when_signing() -> None:
    with pytest.raises(Exception, match="not in the proof set"):
        sign(sign(credential(), K1, VM1, proof_id="urn:a"), K2, VM2, previous_proof="urn:b")
