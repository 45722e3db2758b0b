"""What a person reads on a credential page, in which language, and who gets JSON instead."""

from __future__ import annotations

import re
from types import SimpleNamespace

from starlette.requests import Request

# Pure modules only: the registry's table models share SQLModel's global metadata with the
# other services' models, which other unit tests import in the same process.
from microcred_registry.pages.domain import outcomes_of, present
from microcred_registry.pages.i18n import choose_language, translator
from microcred_registry.pages.negotiation import wants_json
from microcred_registry.pages.rendering import KNOWN_CHECKS, TEMPLATES, render
from microcred_registry.wallet import domain as sharing

DOC = {
    "name": "Workplace Health and Safety Awareness",
    "nameFr": "Sensibilisation à la santé et sécurité au travail",
    "validFrom": "2026-11-30T10:00:00Z", "awardedDate": "2026-11-30T10:00:00Z",
    "jurisdiction": "CA-QC",
    "issuer": {"id": "https://r.example/issuers/cegep", "name": "Cégep de la Rivière-du-Nord",
               "url": "https://cegep.example", "address": {"addressRegion": "CA-QC"}},
    "credentialSubject": {
        "name": "Ana Silva", "creditsEarned": 1.5,
        "achievement": {
            "name": "Workplace Health and Safety Awareness",
            "nameFr": "Sensibilisation à la santé et sécurité au travail",
            "criteria": {"narrative": "Achieved learning outcomes:\n- Spot hazards\n- Report",
                         "narrativeFr": "Résultats :\n- Repérer les dangers\n- Signaler"},
            "level": {"framework": "EQF", "value": "4"},
            "notionalWorkload": {"hours": 30},
            "alignment": [{"targetName": "hazard awareness", "targetFramework": "ESCO",
                           "targetUrl": "http://data.europa.eu/esco/skill/x"}]}},
}
REVOKED = {"verified": False, "status": "revoked",
           "checks": [{"check": "proof", "ok": True, "detail": ""},
                      {"check": "status", "ok": False, "detail": "revocation bit is set"}],
           "problems": ["status: revocation bit is set"]}


def request(query: str = "", accept_language: str = "") -> Request:
    headers = [(b"accept-language", accept_language.encode())] if accept_language else []
    return Request({"type": "http", "method": "GET", "path": "/c/x", "headers": headers,
                    "query_string": query.encode()})


def test_the_french_view_names_the_province_outcomes_and_status_in_french():
    view = present(DOC, REVOKED, "fr", translator("fr"), "délivrée par erreur")
    assert view.title == "Sensibilisation à la santé et sécurité au travail"
    assert view.province == "Québec" and view.holder == "Ana Silva"
    assert view.outcomes == ["Repérer les dangers", "Signaler"]
    assert view.issued == "30 novembre 2026" and view.credits == "1.5"
    assert view.level == "EQF 4" and view.workload == ["30 heures"]
    assert view.status == "revoked" and view.reasons == ["status: revocation bit is set"]


def test_a_narrative_without_list_items_is_shown_as_it_is():
    assert outcomes_of("Capstone project, pass mark 70%.") == ["Capstone project, pass mark 70%."]


def test_lang_query_wins_over_accept_language_and_q_values_are_honoured():
    assert choose_language("fr", "en-CA") == "fr"
    assert choose_language(None, "en;q=0.4, fr-CA;q=0.9") == "fr"
    assert choose_language(None, "de-DE") == "en"


def test_programs_get_json_and_browsers_get_html_from_the_same_url():
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert wants_json(browser, default=True) is False
    assert wants_json("application/ld+json", default=False) is True
    assert wants_json("application/vc+ld+json, text/html;q=0.5", default=False) is True
    assert wants_json("*/*", default=True) is True and wants_json(None, default=False) is False


def test_the_rendered_page_is_accessible_bilingual_markup_with_link_previews():
    view = present(DOC, REVOKED, "fr", translator("fr"), "délivrée par erreur")
    html = render(request("lang=fr"), "credential.html", c=view, preview="aperçu",
                  canonical="https://r.example/c/x", json_url="https://r.example/c/x?f=json",
                  checked_at="now").body.decode()
    assert '<html lang="fr">' in html and '<main id="main">' in html
    assert "Révoquée" in html and "délivrée par erreur" in html and "Québec" in html
    assert 'property="og:title"' in html and 'name="twitter:card"' in html
    assert 'noindex' in html  # a share-link page stays out of search engines
    assert '<th scope="col">' in html and 'role="img" aria-label=' in html


def test_escaping_keeps_a_hostile_name_as_text():
    doc = {**DOC, "credentialSubject": {**DOC["credentialSubject"],
                                        "name": "<script>alert(1)</script>"}}
    view = present(doc, REVOKED, "en", translator("en"))
    html = TEMPLATES.get_template("credential.html").render(
        lang="en", t=translator("en"), indexable=True, c=view, preview="", canonical="",
        json_url="", checked_at="")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_visibility_widens_in_order_and_only_private_stops_share_links():
    assert sharing.wider("private", "link") == "link"
    assert sharing.wider("public", "link") == "public"
    assert [sharing.links_work(v) for v in sharing.VISIBILITIES] == [False, True, True, True]
    assert sharing.EMPLOYER_ID.match("acme-corp") and not sharing.EMPLOYER_ID.match("Acme!")


def test_a_share_link_shows_its_url_only_when_created():
    from datetime import UTC, datetime, timedelta

    link = SimpleNamespace(id="1", created_at=datetime.now(UTC), revoked_at=None,
                           expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert sharing.link_json(link, "https://r")["state"] == "expired"
    assert "url" not in sharing.link_json(link, "https://r")
    assert sharing.link_json(link, "https://r", "tok")["url"] == "https://r/c/tok"


def test_a_credential_with_several_subjects_or_in_vc_1_1_gets_a_page() -> None:
    doc = {"@context": ["https://www.w3.org/2018/credentials/v1"], "name": "Lab safety",
           "issuanceDate": "2026-03-01T00:00:00Z", "expirationDate": "2027-03-01T00:00:00Z",
           "credentialSubject": ["junk", {"name": "Ada", "achievement": {"name": "Lab"}},
                                 {"name": "Grace"}]}
    view = present(doc, {"status": "valid"}, "en", translator("en"))
    assert (view.holder, view.title) == ("Ada", "Lab")
    assert "2026" in view.issued and "2027" in view.valid_until
    odd = present({"credentialSubject": {"achievement": ["x"]}}, {}, "en", translator("en"))
    assert odd.title == ""
    # Criteria as text, not the object OB 3.0 names: no outcomes listed, and still a page.
    text = present({"credentialSubject": {"achievement": {"name": "Lab", "criteria": "x"}}},
                   {}, "fr", translator("fr"))
    assert (text.title, text.outcomes) == ("Lab", [])


def _status_row(doc: dict, lang: str) -> str:
    view = present(doc, REVOKED, lang, translator(lang))
    html = render(request(f"lang={lang}"), "credential.html", c=view, preview="p",
                  canonical="https://r.example/c/x", json_url="https://r.example/c/x?f=json",
                  checked_at="now", known_checks=KNOWN_CHECKS).body.decode()
    rows = re.findall(r'<th scope="row">([^<]*)</th>\s*<td>[^<]*revocation bit is set', html)
    assert len(rows) == 1, html
    return str(rows[0])


def test_the_status_check_is_named_for_the_entries_the_credential_carries():
    """ADR 8: a credential of a default definition can be revoked only (one entry); one of
    a suspendable definition carries both, and the page says so."""
    entry = {"type": "BitstringStatusListEntry", "statusListIndex": "3",
             "statusListCredential": "https://r.example/status/p/revocation/0"}
    one = {**DOC, "credentialStatus": {**entry, "statusPurpose": "revocation"}}
    both = {**DOC, "credentialStatus": [{**entry, "statusPurpose": "revocation"},
                                        {**entry, "statusPurpose": "suspension"}]}
    assert _status_row(one, "en") == "Revocation"
    assert _status_row(one, "fr") == "Révocation"
    assert _status_row(both, "en") == "Revocation and suspension"
    assert _status_row(both, "fr") == "Révocation et suspension"


def test_the_learners_list_names_the_issuer_and_offers_each_wallet_in_their_language():
    from microcred_registry.pages.domain import listed

    assert listed(DOC, "fr") == ("Sensibilisation à la santé et sécurité au travail",
                                 "Cégep de la Rivière-du-Nord")
    assert listed({}, "en", "Stored title") == ("Stored title", "")
    title, issuer = listed(DOC, "fr")
    item = {"id": "c1", "title": title, "provider": issuer, "status": "active",
            "visibility": "private", "url": "https://r/v1/credentials/c1",
            "actions": {"id": "c1", "png": "p", "svg": "s", "linkedin": "https://l",
                        "wallet": True}}
    html = render(request("lang=fr"), "learner.html", items=[item], new_link=None,
                  profile_url="https://r/p/x", visibilities=sharing.VISIBILITIES).body.decode()
    assert "<td>Cégep de la Rivière-du-Nord</td>" in html
    assert 'action="/learner/credentials/c1/wallets/lcw?lang=fr"' in html
    assert 'action="/learner/credentials/c1/wallets/openid?lang=fr"' in html
    assert "Ajouter au Learner Credential Wallet" in html
    revoked = {**item, "status": "revoked", "actions": {**item["actions"], "wallet": False}}
    html = render(request("lang=en"), "learner.html", items=[revoked], new_link=None,
                  profile_url="https://r/p/x", visibilities=sharing.VISIBILITIES).body.decode()
    assert "/wallets/" not in html  # a revoked credential goes into no wallet
