"""VC-API behaviours checked against the reference JavaScript stack (issue 10): VC 1.1
credentials signed in Python with both cryptosuites verify there, and JavaScript-signed
VC 1.1 credentials verify here."""

from __future__ import annotations

import copy

import pytest

from microcred_shared.vc import statuslist, verify_credential
from microcred_shared.vc.contexts import DATA_INTEGRITY_V2_URL, STATUS_V1_URL, VC_V1_URL
from microcred_shared.vc.proofs import sign
from microcred_testkit import vc_examples as examples

from .conftest import run_node, served

pytestmark = pytest.mark.interop
SUITES = ["eddsa-rdfc-2022", "eddsa-jcs-2022"]
OB = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"


@pytest.fixture
def issuer() -> examples.ExampleIssuer:
    world = examples.ExampleIssuer()
    world.publish_lists()
    return world


def v1_credential(issuer: examples.ExampleIssuer, index: int) -> dict:
    """The example OB credential in the VC 1.1 data model (as OB 3.0 was first published)."""
    doc = examples.example_credential(issuer_id=issuer.issuer_id, credential_status=[
        statuslist.status_entry(status_list_credential=issuer.list_url(p), index=index,
                                purpose=p) for p in statuslist.PURPOSES])  # type: ignore[arg-type]
    doc["@context"] = [VC_V1_URL, OB, STATUS_V1_URL, "https://w3id.org/microcred/v1"]
    doc["issuanceDate"] = doc.pop("validFrom")
    doc["expirationDate"] = "2099-01-01T00:00:00Z"
    return doc


@pytest.mark.parametrize("suite", SUITES)
async def test_a_vc_1_1_credential_signed_here_verifies_in_javascript_and_here(
        issuer, suite, tmp_path):
    signed = sign(v1_credential(issuer, 7), issuer.private_key, issuer.verification_method,
                  cryptosuite=suite)
    assert signed["@context"][-1] == DATA_INTEGRITY_V2_URL  # as jsonld-signatures adds it
    [js] = run_node("verify.mjs", [signed], documents=served(issuer), tmp_path=tmp_path)
    assert js == {"verified": True, "error": None,
                  "status": {"revocation": False, "suspension": False}}
    ours = await verify_credential(signed, resolve_document=issuer.resolve)
    assert ours.verified, ours.problems()

    expired = copy.deepcopy(v1_credential(issuer, 8))
    expired["expirationDate"] = "2026-02-01T00:00:00Z"
    late = sign(expired, issuer.private_key, issuer.verification_method, cryptosuite=suite)
    assert (await verify_credential(late, resolve_document=issuer.resolve)).status == "expired"


@pytest.mark.parametrize("suite", SUITES)
async def test_a_vc_1_1_credential_signed_in_javascript_verifies_here(issuer, suite, tmp_path):
    [signed] = run_node("sign.mjs", [v1_credential(issuer, 9)], "--seed",
                        bytes(range(32)).hex(), "--vm", issuer.verification_method,
                        "--suite", suite, documents=served(issuer), tmp_path=tmp_path)
    ours = await verify_credential(signed, resolve_document=issuer.resolve)
    assert ours.verified, ours.problems()


@pytest.mark.parametrize("suite", SUITES)
async def test_a_presentation_made_by_a_javascript_wallet_verifies_here(issuer, suite,
                                                                        tmp_path):
    from microcred_shared.vc.presentation import verify_presentation

    signed = issuer.credential(10, suite=suite)
    vp = {"@context": ["https://www.w3.org/ns/credentials/v2"],
          "type": ["VerifiablePresentation"], "verifiableCredential": [signed]}
    [presented] = run_node("present.mjs", [vp], "--seed", bytes([4] * 32).hex(),
                           "--challenge", "c-42", "--domain", "verifier.example",
                           "--suite", suite, documents=served(issuer), tmp_path=tmp_path)
    assert presented["holder"].startswith("did:key:z6Mk")
    ok = await verify_presentation(presented, resolve_document=issuer.resolve,
                                   challenge="c-42", domain="verifier.example")
    assert ok.verified, ok.problems()
    replayed = await verify_presentation(presented, resolve_document=issuer.resolve,
                                         challenge="c-43", domain="verifier.example")
    assert not replayed.verified and not replayed.checks["challenge"].ok
