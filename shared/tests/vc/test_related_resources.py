"""relatedResource (VC 2.0 "Integrity of Related Resources"): the shape and the digests'
syntax are checked at issue and on verification; a digest is compared with the resource
whenever we hold its bytes (our vendored contexts), and nothing is fetched."""

from __future__ import annotations

import base64
import hashlib

import base58
import pytest

from microcred_shared.vc import contexts, private_key_from_seed, sign, verify_credential
from microcred_shared.vc.keys import did_key, did_key_verification_method
from microcred_shared.vc.related import mismatches, problems
from microcred_shared.vc.vcdm import credential_problems

V2 = "https://www.w3.org/ns/credentials/v2"
V2_BYTES = contexts.context_file_bytes(V2)
SRI = "sha384-" + base64.b64encode(hashlib.sha384(V2_BYTES).digest()).decode()
MULTIBASE = "z" + base58.b58encode(b"\x12\x20" + hashlib.sha256(V2_BYTES).digest()).decode()
WRONG_SRI = "sha384-" + base64.b64encode(hashlib.sha384(b"other").digest()).decode()
KEY = private_key_from_seed(bytes([9] * 32))


def test_well_formed_entries_pass_and_digests_of_held_contexts_are_compared() -> None:
    value = [{"id": V2, "digestSRI": SRI, "digestMultibase": MULTIBASE},
             {"id": "https://example.org/logo.png", "mediaType": "image/png",
              "digestMultibase": "u" + base64.urlsafe_b64encode(
                  b"\x12\x20" + bytes(32)).decode().rstrip("=")}]
    assert problems(value) == []
    assert mismatches(value) == ([], 1)  # the logo is not held: not compared


@pytest.mark.parametrize(("value", "expected"), [
    (["https://example.org/a"], "one or more objects"),
    ("https://example.org/a", "one or more objects"),
    ([], "one or more objects"),
    ([{"digestSRI": SRI}], "id must be a URL"),
    ([{"id": V2, "digestSRI": SRI}, {"id": V2, "digestSRI": SRI}], "appears twice"),
    ([{"id": V2}], "needs a digestSRI or a digestMultibase"),
    ([{"id": V2, "digestSRI": "md5-abc"}], "sha256-, sha384- or sha512-"),
    ([{"id": V2, "digestSRI": "sha384-AAAA"}], "not a sha384 digest"),
    ([{"id": V2, "digestMultibase": "xabc"}], "not a base64url"),
    ([{"id": V2, "digestMultibase": "z" + base58.b58encode(b"\x11\x14" + bytes(20)).decode()}],
     "not a SHA-2 or SHA-3"),
])
def test_a_malformed_related_resource_is_refused_with_a_reason(value, expected) -> None:
    found = problems(value)
    assert any(expected in p for p in found), found


def credential(related: object) -> dict:
    return {"@context": [V2], "type": ["VerifiableCredential"],
            "issuer": did_key(KEY.public_key()),
            "credentialSubject": {"id": "did:example:1"}, "relatedResource": related}


def test_issuing_refuses_a_wrong_digest_for_a_context_we_hold() -> None:
    assert credential_problems(credential([{"id": V2, "digestSRI": SRI}])) == []
    found = credential_problems(credential([{"id": V2, "digestSRI": WRONG_SRI}]))
    assert found == [f"the sha384 digest of {V2} does not match the resource"]


async def test_verification_checks_the_digests_it_can_and_fails_a_wrong_one() -> None:
    async def nothing(url: str) -> dict:
        raise LookupError(url)

    vm = did_key_verification_method(KEY.public_key())
    good = sign(credential([{"id": V2, "digestSRI": SRI}]), KEY, vm)
    result = await verify_credential(good, resolve_document=nothing)
    assert result.verified, result.problems()
    assert result.checks["related_resources"].detail.startswith("1 of 1 related resources")
    bad = sign(credential([{"id": V2, "digestSRI": WRONG_SRI}]), KEY, vm)
    result = await verify_credential(bad, resolve_document=nothing)
    assert result.status == "invalid"
    assert "does not match the resource" in result.checks["related_resources"].detail
