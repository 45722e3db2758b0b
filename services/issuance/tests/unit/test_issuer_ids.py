"""Who an issuer is in what it signs: a did:web under an https public origin (ADR 22)."""

from __future__ import annotations

from microcred_issuance.keys.domain import issuer_id


def test_an_issuer_behind_an_https_origin_is_a_did_web_with_the_port_encoded():
    assert issuer_id("https://127.0.0.1:8103", "acme") == "did:web:127.0.0.1%3A8103:issuers:acme"


def test_behind_plain_http_the_issuer_stays_its_profile_url_since_did_web_needs_https():
    assert issuer_id("http://127.0.0.1:8103", "acme") == "http://127.0.0.1:8103/issuers/acme"
