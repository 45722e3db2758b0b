"""The Open Badges 3.0 API's pure rules (ADR 30): PKCE S256 (RFC 7636's own example),
paging links, `since`, where a learner may be sent back after signing in, the service
description, and the consent page in both languages."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from microcred_registry.ob_api import domain
from microcred_registry.ob_api.domain import ApiError
from microcred_registry.pages.rendering import render
from microcred_registry.pages.returns import safe_return


def test_pkce_s256_is_rfc_7636s_example_and_nothing_else() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert domain.pkce_matches(verifier, challenge)
    assert not domain.pkce_matches(verifier[:-1] + "l", challenge)
    assert not domain.pkce_matches(challenge, challenge)  # "plain" is not accepted
    assert not domain.pkce_matches("short", challenge)


def test_page_links_name_first_last_next_and_prev() -> None:
    url = "https://r.example/ims/ob/v3p0/credentials"
    middle = domain.page_links(url, limit=2, offset=2, total=5)
    assert f'<{url}?limit=2&offset=4>; rel="next"' in middle
    assert f'<{url}?limit=2&offset=4>; rel="last"' in middle
    assert f'<{url}?limit=2&offset=0>; rel="first"' in middle
    assert f'<{url}?limit=2&offset=0>; rel="prev"' in middle
    last = domain.page_links(url, limit=2, offset=4, total=5)
    assert 'rel="next"' not in last and 'rel="prev"' in last
    since = domain.page_links(url, limit=2, offset=0, total=5, since="2026-07-01T00:00:00Z")
    assert f'<{url}?limit=2&offset=2&since=2026-07-01T00%3A00%3A00Z>; rel="next"' in since
    empty = domain.page_links(url, limit=20, offset=0, total=0)
    assert 'rel="next"' not in empty and 'rel="prev"' not in empty


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"offset": "-1"},
                                    {"limit": "x"}])
def test_paging_out_of_range_is_an_invalid_query_parameter(params: dict[str, str]) -> None:
    with pytest.raises(ApiError) as caught:
        domain.paging(params)
    assert caught.value.status == 400 and caught.value.minor == "invalid_query_parameter"
    assert caught.value.body()["imsx_codeMinor"]["imsx_codeMinorField"][0][
        "imsx_codeMinorFieldValue"] == "invalid_query_parameter"


def test_since_needs_an_offset() -> None:
    assert domain.since("2026-07-01T09:00:00Z").utcoffset() is not None
    for bad in ("2026-07-01", "2026-07-01T09:00:00", "yesterday"):
        with pytest.raises(ApiError):
            domain.since(bad)


def test_a_learner_is_sent_back_only_to_our_authorization_endpoint() -> None:
    ok = "/ims/ob/v3p0/auth/authorize?client_id=obc_x&redirect_uri=https%3A%2F%2Fh.example"
    assert safe_return(ok) == ok
    for bad in (None, "", "https://evil.example/", "//evil.example/ims/ob/v3p0/auth/authorize?",
                "/learner", "/ims/ob/v3p0/auth/authorize?x=1//evil"):
        assert safe_return(bad) is None


def test_the_service_description_names_what_a_client_needs() -> None:
    sdd = domain.service_description("https://r.example", name="microcred",
                                     terms_url="https://r.example/terms",
                                     privacy_url="https://r.example/privacy")
    scheme = sdd["components"]["securitySchemes"]["OAuth2ACG"]
    assert scheme["x-imssf-registrationUrl"] == "https://r.example/ims/ob/v3p0/auth/register"
    flow = scheme["flows"]["authorizationCode"]
    assert flow["tokenUrl"] == flow["refreshUrl"] == "https://r.example/ims/ob/v3p0/auth/token"
    assert set(flow["scopes"]) == {domain.READ_CREDENTIALS, domain.UPSERT_CREDENTIAL,
                                   domain.READ_PROFILE, domain.UPDATE_PROFILE}
    assert sdd["info"]["termsOfService"] == "https://r.example/terms"


def _request(lang: str) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/",
                             "query_string": f"lang={lang}".encode(), "headers": []}
    return Request(scope)


@pytest.mark.parametrize(("lang", "words"), [
    ("en", ["Allow access to your credentials?", "read your credentials", "Refuse"]),
    ("fr", ["Autoriser l&#39;accès à vos titres?", "lire vos titres", "Refuser"])])
def test_the_consent_page_says_who_asks_for_what(lang: str, words: list[str]) -> None:
    page = render(_request(lang), "ob_consent.html", client_name="<Host>",
                  client_uri="https://host.example/", redirect_host="host.example",
                  scopes=[domain.READ_CREDENTIALS], offline=False,
                  fields={"client_id": "obc_1", "state": 'a"b'},
                  action="/ims/ob/v3p0/auth/authorize")
    html = page.body.decode()
    for word in words:
        assert word in html
    assert "&lt;Host&gt;" in html and "<Host>" not in html  # escaped
    assert 'value="a&#34;b"' in html or 'value="a&quot;b"' in html
    assert 'lang="' + lang + '"' in html
