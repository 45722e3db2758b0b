"""Verifying a presentation: the holder's proof (authentication, did:key), the verifier's
challenge and domain, and every credential in it checked as on its own."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from microcred_shared.vc import did_key, private_key_from_seed, sign
from microcred_shared.vc.contexts import VC_V1_URL, VC_V2_URL
from microcred_shared.vc.keys import did_key_verification_method
from microcred_shared.vc.presentation import verify_presentation

ISSUER_KEY = private_key_from_seed(bytes([5] * 32))
HOLDER_KEY = private_key_from_seed(bytes([6] * 32))
OTHER_KEY = private_key_from_seed(bytes([7] * 32))
ISSUER, HOLDER = did_key(ISSUER_KEY.public_key()), did_key(HOLDER_KEY.public_key())


async def nothing(url: str) -> dict[str, Any]:
    raise LookupError(url)


def credential(context: str = VC_V2_URL) -> dict[str, Any]:
    doc: dict[str, Any] = {"@context": [context], "type": ["VerifiableCredential"],
                           "issuer": ISSUER, "credentialSubject": {"id": HOLDER}}
    doc["issuanceDate" if context == VC_V1_URL else "validFrom"] = "2026-01-01T00:00:00Z"
    return sign(doc, ISSUER_KEY, did_key_verification_method(ISSUER_KEY.public_key()))


def presentation(key=HOLDER_KEY, *, context: str = VC_V2_URL, challenge: str | None = "c-1",
                 domain: str | None = "verifier.example", purpose: str = "authentication",
                 credentials: list | None = None) -> dict[str, Any]:
    vp = {"@context": [context], "type": ["VerifiablePresentation"], "holder": HOLDER,
          "verifiableCredential": credentials if credentials is not None else [
              credential(context)]}
    return sign(vp, key, did_key_verification_method(key.public_key()), proof_purpose=purpose,
                challenge=challenge, domain=domain)


@pytest.mark.parametrize("context", [VC_V2_URL, VC_V1_URL])
async def test_a_holders_presentation_with_the_right_challenge_and_domain_verifies(context):
    result = await verify_presentation(presentation(context=context), resolve_document=nothing,
                                       challenge="c-1", domain="verifier.example")
    assert result.verified, result.problems()
    assert [c.verified for c in result.credentials] == [True]


@pytest.mark.parametrize(("vp", "options", "expected"), [
    (lambda: presentation(), {"challenge": "c-2"}, "challenge: proof 1 has challenge 'c-1'"),
    (lambda: presentation(), {"domain": "elsewhere.example"}, "domain: proof 1 has domain"),
    (lambda: presentation(challenge=None), {"challenge": "c-1"}, "has challenge None"),
    (lambda: presentation(OTHER_KEY), {}, "is by did:key:"),
    (lambda: presentation(purpose="assertionMethod"), {}, "not authentication"),
    (lambda: {k: v for k, v in presentation().items() if k != "proof"}, {}, "has no proof"),
    (lambda: {**presentation(), "type": ["VerifiableCredential"]}, {},
     "type must include VerifiablePresentation"),
])
async def test_a_presentation_that_does_not_prove_what_the_verifier_asked_fails(
        vp, options, expected):
    result = await verify_presentation(vp(), resolve_document=nothing, **options)
    assert not result.verified
    assert any(expected in p for p in result.problems()), result.problems()


async def test_a_tampered_credential_inside_fails_the_presentation_and_says_which():
    inner = credential()
    inner["credentialSubject"]["id"] = "did:example:someone-else"
    vp = presentation(credentials=[credential(), inner])
    result = await verify_presentation(vp, resolve_document=nothing, challenge="c-1")
    assert result.checks["proof"].ok  # the holder signed exactly this ...
    assert not result.verified  # ... but the second credential is not the issuer's
    assert any(p.startswith("credential 2: proof: signature does not match")
               for p in result.problems()), result.problems()


async def test_a_tampered_presentation_fails():
    vp = copy.deepcopy(presentation())
    vp["holder"] = "did:example:mallory"
    result = await verify_presentation(vp, resolve_document=nothing, challenge="c-1")
    assert not result.verified and not result.checks["proof"].ok
