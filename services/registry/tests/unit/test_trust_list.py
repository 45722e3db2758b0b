"""The trust list's rules and documents (ADR 26), without I/O: who is listed, the DCC
registry format that wallets read, and the OpenID Federation statements signed by the
registry's key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from microcred_registry.trust import domain, statements
from microcred_shared.catalog import Provider
from microcred_testkit.providers import provider_doc

BASE = "https://127.0.0.1:8443"


def provider(pid: str, **changes: object) -> Provider:
    doc = provider_doc(pid, jurisdiction="CA-QC", name_fr=f"Collège {pid}")
    qa = changes.pop("qa_status", None)
    if qa:
        doc["quality_assurance"]["status"] = qa
    return Provider.model_validate({**doc, **changes})


def test_active_providers_in_good_standing_are_listed_under_their_did_and_nothing_else():
    doc = domain.dcc_registry(
        [provider("zed"), provider("acme"), provider("gone", status="suspended"),
         provider("lapsed", qa_status="Withdrawn")],
        BASE, created=datetime(2026, 1, 1, tzinfo=UTC), updated=datetime(2026, 2, 1, tzinfo=UTC))
    assert list(doc["registry"]) == ["did:web:127.0.0.1%3A8443:issuers:acme",
                                     "did:web:127.0.0.1%3A8443:issuers:zed"]
    assert doc["meta"]["updated"] == "2026-02-01T00:00:00Z"


def test_an_entry_carries_what_the_wallets_show_and_what_quality_assured_means():
    entry = domain.dcc_registry([provider("acme")], BASE, created=None, updated=None)[
        "registry"]["did:web:127.0.0.1%3A8443:issuers:acme"]
    # name, location and url are what the DCC registry client reads.
    assert entry["name"] == "Provider acme" and entry["url"] == "https://acme.example"
    assert entry["location"] == "Quebec, Canada"
    assert entry["nameFr"] == "Collège acme" and entry["jurisdiction"] == "CA-QC"
    assert entry["qualityAssurance"] == {"type": "Industry standard review",
                                         "body": "Sector board", "status": "endorsed"}
    assert entry["profile"] == f"{BASE}/issuers/acme"


def test_a_did_sent_unencoded_in_the_query_string_still_finds_its_issuer():
    known = [provider("acme"), provider("gone", status="suspended")]
    assert domain.provider_of("did:web:127.0.0.1%3A8443:issuers:acme", BASE, known).id == "acme"
    # `?sub=did:web:127.0.0.1%3A8443:…` arrives percent-decoded on the server.
    assert domain.provider_of("did:web:127.0.0.1:8443:issuers:acme", BASE, known).id == "acme"
    assert domain.provider_of("did:web:127.0.0.1%3A8443:issuers:gone", BASE, known) is None
    assert domain.provider_of("did:web:evil.example:issuers:acme", BASE, known) is None


def test_the_known_registries_entries_have_the_shape_wallets_load():
    oidf, legacy = domain.known_registries(BASE)
    assert oidf == {"type": "oidf", "name": domain.NAME,
                    "trustAnchorEC": f"{BASE}/.well-known/openid-federation"}
    assert legacy == {"type": "dcc-legacy", "name": domain.NAME,
                      "url": f"{BASE}/trust/registry.json"}


def _decode(jwt: str, public: Ed25519PublicKey) -> tuple[dict, dict]:
    head, body, sig = jwt.split(".")
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    public.verify(pad(sig), f"{head}.{body}".encode())
    return json.loads(pad(head)), json.loads(pad(body))


def test_entity_statements_are_eddsa_jwts_signed_by_the_registry_key_that_its_config_names():
    key = Ed25519PrivateKey.generate()
    config = statements.entity_configuration(BASE, key, domain.federation_metadata(BASE), 1000)
    header, claims = _decode(config, key.public_key())
    assert header == {"alg": "EdDSA", "kid": statements.key_id(key), "typ": "entity-statement+jwt"}
    assert claims["iss"] == claims["sub"] == BASE and claims["exp"] > claims["iat"] == 1000
    (jwk,) = claims["jwks"]["keys"]
    named = Ed25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))
    _decode(config, named)  # the key it names verifies it: a self-signed configuration
    fed = claims["metadata"]["federation_entity"]
    assert fed["federation_fetch_endpoint"] == f"{BASE}/trust/fetch"

    acme = provider("acme")
    sub = statements.subordinate_statement(
        BASE, domain.issuer_did(BASE, "acme"), key, [], domain.subordinate_metadata(acme, BASE),
        1000)
    _, claims = _decode(sub, key.public_key())
    assert claims["sub"] == "did:web:127.0.0.1%3A8443:issuers:acme" and claims["iss"] == BASE
    assert claims["metadata"]["federation_entity"]["organization_name"] == "Provider acme"
    with pytest.raises(InvalidSignature):
        _decode(sub, Ed25519PrivateKey.generate().public_key())


def test_behind_a_plain_http_url_the_list_is_keyed_by_the_issuer_id_credentials_carry_there():
    """No did:web without https (ADR 22): issuance names the profile URL, so does the list."""
    doc = domain.dcc_registry([provider("acme")], "http://registry.local", created=None,
                              updated=None)
    assert list(doc["registry"]) == ["http://registry.local/issuers/acme"]
