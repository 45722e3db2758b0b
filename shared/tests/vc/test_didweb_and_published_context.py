"""did:web identifiers (the W3C CCG method's mapping both ways) and our context as each
deployment publishes it (ADR 22)."""

from __future__ import annotations

import hashlib

import pytest

from microcred_shared.vc import contexts, proofs
from microcred_shared.vc.didweb import DidWebError, did_web, document_url
from microcred_testkit import vc_examples as examples


@pytest.mark.parametrize(("base", "did", "url"), [
    ("https://127.0.0.1:8103", "did:web:127.0.0.1%3A8103:issuers:acme",
     "https://127.0.0.1:8103/issuers/acme/did.json"),
    ("https://registry.example.ca", "did:web:registry.example.ca:issuers:acme",
     "https://registry.example.ca/issuers/acme/did.json"),
    ("https://example.org/microcred/", "did:web:example.org:microcred:issuers:acme",
     "https://example.org/microcred/issuers/acme/did.json"),
])
def test_an_issuer_did_names_the_did_document_the_registry_serves(base, did, url):
    assert did_web(base, "issuers", "acme") == did
    assert document_url(did) == url
    assert document_url(did + "#key-1") == url


def test_a_did_without_a_path_lives_under_well_known():
    assert document_url("did:web:example.org") == "https://example.org/.well-known/did.json"


@pytest.mark.parametrize("base", ["http://127.0.0.1:8103", "registry.example", "https://"])
def test_did_web_needs_an_https_origin(base):
    with pytest.raises(DidWebError):
        did_web(base, "issuers", "acme")


@pytest.mark.parametrize("did", ["did:web:", "did:key:z6Mk", "did:web:a.example:..:x",
                                 "did:web:a.example::x", "did:web:a.example%2Fevil:x"])
def test_a_malformed_did_web_is_refused(did):
    with pytest.raises(DidWebError):
        document_url(did)


def test_every_deployment_url_of_our_context_is_the_vendored_document():
    base = "https://registry.example.ca"
    url = contexts.microcred_context_url(base)
    assert url == "https://registry.example.ca/contexts/microcred/v1"
    assert contexts.get_context(url) == contexts.get_context(contexts.MICROCRED_V1_URL)
    assert contexts.sha256_of(url) == hashlib.sha256(
        contexts.context_file_bytes(url)).hexdigest()
    for other in ("http://registry.example.ca/contexts/microcred/v1",
                  "https://registry.example.ca/contexts/microcred/v2",
                  "https://registry.example.ca/contexts/microcred/v1?x=1"):
        assert not contexts.is_known(other)


@pytest.mark.parametrize("suite", [proofs.RDFC, proofs.JCS])
def test_a_credential_naming_the_published_context_signs_and_verifies_on_both_paths(suite):
    issuer = examples.ExampleIssuer()
    doc = examples.example_credential()
    doc["@context"][-1] = contexts.microcred_context_url("https://registry.example.ca")
    signed = proofs.sign(doc, issuer.private_key, issuer.verification_method, cryptosuite=suite)
    def public(_vm: str):
        return issuer.private_key.public_key()

    assert proofs.verify_proof_sync(signed, public).ok
    assert proofs.verify_proof_sync(signed, public, fast=False).ok  # the pyld oracle
