"""The issue mail's "Add to wallet" link (ADR 31) as the Learner Credential Wallet reads it:
its query is the one `urlencode` writes, whatever the registry's address, exchange URL or
challenge (issue 12 builds it without `urlencode`; the link must not change)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from microcred_registry.delivery.domain import LCW_REQUEST, deep_link, exchange_url


@pytest.mark.parametrize(("base_url", "exchange_id", "challenge"), [
    ("https://registry.example", "0b6f1c5e-2f7a-4d59-9a43-3f8e1d2c0a11", "Zq8-_x3Yv"),
    ("http://localhost:8003", "id with space/and+plus", "a&b=c d"),
    ("https://reg.example:8443/sub path", "é", ""),
])
def test_the_wallet_link_is_the_query_urlencode_writes(base_url, exchange_id, challenge):
    url = exchange_url(base_url, exchange_id)
    expected = LCW_REQUEST + "?" + urlencode({
        "issuer": urlsplit(base_url).netloc, "auth_type": "bearer", "challenge": challenge,
        "vc_request_url": url})
    for _ in range(2):  # the second time from what was remembered
        assert deep_link(base_url, url, challenge) == expected
    query = parse_qs(urlsplit(expected).query, keep_blank_values=True)
    assert query["vc_request_url"] == [url] and query["challenge"] == [challenge]
