"""Bitstring Status List encoding and documents."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime

import pytest

from microcred_shared.vc import statuslist
from microcred_shared.vc.canon import rdfc_reference


def test_bit_zero_is_the_leftmost_bit_of_the_first_byte():
    bits = statuslist.new_list()
    statuslist.set_bit(bits, 0)
    statuslist.set_bit(bits, 9)
    assert bits[0] == 0x80 and bits[1] == 0x40
    assert statuslist.get_bit(bits, 0) and not statuslist.get_bit(bits, 1)
    statuslist.set_bit(bits, 0, False)
    assert bits[0] == 0


def test_an_encoded_list_is_multibase_base64url_gzip_and_round_trips():
    bits = statuslist.new_list()
    for index in (3, 1000, 131071):
        statuslist.set_bit(bits, index)
    encoded = statuslist.encode_list(bits)
    assert encoded.startswith("u") and "=" not in encoded
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert raw == bytes(bits) and len(raw) * 8 == 131072
    assert statuslist.decode_list(encoded) == bits
    assert statuslist.encode_list(bits) == encoded  # deterministic (gzip mtime 0)


def test_lists_shorter_than_the_specs_minimum_and_indexes_outside_are_refused():
    with pytest.raises(statuslist.StatusListError):
        statuslist.new_list(8)
    with pytest.raises(statuslist.StatusListError):
        statuslist.encode_list(bytearray(100))
    with pytest.raises(statuslist.StatusListError):
        statuslist.get_bit(statuslist.new_list(), 131072)
    with pytest.raises(statuslist.StatusListError):
        statuslist.decode_list("not-multibase")


def test_a_gzip_bomb_is_refused_instead_of_inflated():
    bomb = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(64 * 1024 * 1024))).decode()
    with pytest.raises(statuslist.StatusListError, match="larger"):
        statuslist.decode_list(bomb)


def test_an_entry_and_a_status_list_credential_have_the_spec_shapes():
    url = "https://registry.example/status/p1/revocation/1"
    entry = statuslist.status_entry(status_list_credential=url, index=42)
    assert entry == {"id": f"{url}#42", "type": "BitstringStatusListEntry",
                     "statusPurpose": "revocation", "statusListIndex": "42",
                     "statusListCredential": url}
    credential = statuslist.status_list_credential(
        url=url, issuer="https://registry.example/issuers/p1", purpose="revocation",
        encoded_list=statuslist.encode_list(statuslist.new_list()),
        valid_from=datetime(2026, 1, 1, tzinfo=UTC), ttl_ms=300000)
    assert credential["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert credential["credentialSubject"]["type"] == "BitstringStatusList"
    assert credential["credentialSubject"]["ttl"] == 300000
    nquads = rdfc_reference(credential)  # raises if any term were undefined
    assert "<https://www.w3.org/ns/credentials/status#encodedList>" in nquads
    assert "<https://www.w3.org/ns/credentials/status#ttl>" in nquads
