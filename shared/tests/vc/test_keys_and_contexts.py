"""Multikey / did:key encodings and the offline context loader."""

from __future__ import annotations

import hashlib
import json

import pytest

from microcred_shared.vc import ContextNotFoundError, KeyFormatError, contexts, keys
from microcred_shared.vc.canon import rdfc_reference


def test_a_multikey_round_trips_and_starts_like_every_ed25519_multikey():
    public = keys.private_key_from_seed(b"\x07" * 32).public_key()
    encoded = keys.multikey_encode(public)
    assert encoded.startswith("z6Mk")
    assert keys.public_key_bytes(keys.multikey_decode(encoded)) == keys.public_key_bytes(public)


def test_a_secret_multikey_round_trips_in_both_the_32_and_64_byte_forms():
    private = keys.private_key_from_seed(b"\x09" * 32)
    encoded = keys.secret_multikey_encode(private)
    decoded = keys.secret_multikey_decode(encoded)
    assert keys.public_key_bytes(decoded.public_key()) == keys.public_key_bytes(
        private.public_key())
    short = keys.multibase_encode(b"\x80\x26" + b"\x09" * 32)
    assert keys.public_key_bytes(keys.secret_multikey_decode(short).public_key()) == (
        keys.public_key_bytes(private.public_key()))


@pytest.mark.parametrize(
    "bad", ["", "x6Mk", "z", "z111", keys.multibase_encode(b"\x12\x00" + bytes(32))])
def test_malformed_or_non_ed25519_multikeys_are_refused(bad):
    with pytest.raises(KeyFormatError):
        keys.multikey_decode(bad)


def test_did_key_resolves_locally_to_the_same_key_and_a_document():
    public = keys.private_key_from_seed(b"\x03" * 32).public_key()
    vm = keys.did_key_verification_method(public)
    did = keys.did_key(public)
    assert vm == f"{did}#{did.removeprefix('did:key:')}"
    assert keys.public_key_bytes(keys.resolve_did_key(vm)) == keys.public_key_bytes(public)
    document = keys.did_key_document(did)
    assert document["assertionMethod"] == [vm]
    with pytest.raises(KeyFormatError):
        keys.resolve_did_key("did:web:example.com#key-1")


def test_every_vendored_context_matches_its_manifest_hash():
    for url, entry in contexts.manifest().items():
        assert hashlib.sha256(contexts.context_file_bytes(url)).hexdigest() == entry["sha256"], url


def test_the_loader_never_fetches_an_unknown_context():
    with pytest.raises(ContextNotFoundError):
        contexts.document_loader("https://example.com/some/context")
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://example.com/ctx"],
           "type": ["VerifiableCredential"]}
    with pytest.raises(ContextNotFoundError, match="example.com/ctx"):
        rdfc_reference(doc)


def test_the_microcred_context_is_protected_and_defines_every_extension_term():
    ctx = json.loads(contexts.context_file_bytes(contexts.MICROCRED_V1_URL))["@context"]
    assert ctx["@protected"] is True
    for term in ("level", "notionalWorkload", "assessmentType", "assessmentMethod",
                 "participationForm", "qualityAssurance", "jurisdiction", "prerequisites",
                 "identityVerification", "stackability", "furtherInformation",
                 "definitionVersion", "cipCode", "nocCode", "language", "components",
                 "nameFr", "descriptionFr"):
        assert ctx[term]["@id"].startswith(contexts.MICROCRED_VOCAB), term


def test_base58btc_encodes_as_the_base58_library_does():
    # The proof value of every credential goes through it: any difference breaks proofs.
    import os

    import base58
    samples = [b"", b"\0", b"\0" * 64, b"\0\0\x01", b"\x01", b"\xff" * 64, b"9",
               *(os.urandom(n) for n in (1, 2, 3, 31, 32, 34, 64) for _ in range(200)),
               *(b"\0" * z + os.urandom(64 - z) for z in range(1, 5))]
    for data in samples:
        assert keys.b58encode(data) == base58.b58encode(data).decode(), data
        if data:
            assert keys.multibase_decode(keys.multibase_encode(data)) == data
