"""Learners see employers by their organisation's name (from the directory notify
publishes), the id only while the name is not known yet; only approved employers are offered
for a new share; each active share link can be revoked from the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import unescape
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from starlette.requests import Request

# Pure modules only (see test_learner_pages.py): no table model is imported here.
from microcred_registry.employers.domain import newest, share_json, share_row, shareable
from microcred_registry.pages.domain import present
from microcred_registry.pages.i18n import translator
from microcred_registry.pages.rendering import render
from microcred_shared.contract.events_employers import EmployerPublished

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PUBLIC = "https://registry.example/v1/credentials/5b0f7a4e"
DOC = {"name": "Workplace Health and Safety Awareness", "validFrom": "2026-11-30T10:00:00Z",
       "issuer": {"name": "Lakeshore College", "address": {"addressRegion": "CA-ON"}},
       "credentialSubject": {"name": "Ana Silva", "achievement": {
           "name": "Workplace Health and Safety Awareness"}}}
VALID = {"verified": True, "status": "valid", "checks": [], "problems": []}


def published(name: str, status: str, minutes: int, employer: str = "emp-acme") -> \
        EmployerPublished:
    return EmployerPublished(employer_id=employer, organisation=name, status=status,
                             website="https://acme.example",
                             published_at=T0 + timedelta(minutes=minutes))


def entry(name: str, status: str = "approved") -> SimpleNamespace:
    return SimpleNamespace(organisation=name, status=status, website="https://acme.example")


def owner_page(lang: str, **owner: object) -> str:
    mine = {"id": "5b0f7a4e", "visibility": "private", "links_work": False, "public": None,
            "new_link": None, "links": [], "employers": [], "can_share_with": [],
            "notice": None, **owner}
    req = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                   "query_string": f"lang={lang}".encode()})
    return unescape(render(req, "credential.html", c=present(DOC, VALID, lang, translator(lang)),
                           preview="", canonical=PUBLIC, json_url=PUBLIC, checked_at="now",
                           owner=mine).body.decode())


def test_the_newest_directory_record_of_each_employer_wins_whatever_order_they_arrive_in():
    batch = [published("Acme Ltd", "approved", 5), published("Acme", "pending", 0),
             published("Acme Ltd", "suspended", 9), published("Beta", "approved", 1, "emp-b"),
             published("Acme Old", "approved", 3)]
    kept = {e.employer_id: (e.organisation, e.status) for e in newest(batch)}
    assert kept == {"emp-acme": ("Acme Ltd", "suspended"), "emp-b": ("Beta", "approved")}


def test_the_directory_event_carries_no_contact_details_or_secrets():
    with pytest.raises(ValidationError):
        EmployerPublished(employer_id="emp-acme", organisation="Acme", status="approved",
                          published_at=T0, contact_email="hiring@acme.example")
    assert set(EmployerPublished.model_fields) == {
        "employer_id", "organisation", "status", "website", "published_at"}


def test_only_an_approved_employer_can_newly_be_shared_with():
    assert shareable(entry("Acme"))
    assert not shareable(entry("Acme", "pending"))
    assert not shareable(entry("Acme", "suspended"))
    assert not shareable(None)


def test_the_learner_api_names_a_shared_employer_and_falls_back_to_its_id():
    assert share_json("emp-acme", T0, entry("Acme Hiring Inc.")) == {
        "employer_id": "emp-acme", "name": "Acme Hiring Inc.", "status": "approved",
        "website": "https://acme.example", "since": T0.isoformat()}
    assert share_json("emp-new", None, None) == {
        "employer_id": "emp-new", "name": "emp-new", "status": "unknown", "website": None,
        "since": None}


def test_the_page_names_each_shared_employer_and_its_stop_button_says_whom():
    html = owner_page("en", employers=[
        share_row("emp-acme", "December 1, 2026", entry("Acme Hiring Inc.")),
        share_row("emp-gone", "", entry("Gone Corp", "suspended")),
        share_row("emp-new", "", None)])
    assert "Acme Hiring Inc." in html and "Employer id: emp-acme" in html
    assert 'aria-label="Stop sharing with Acme Hiring Inc."' in html
    assert "Gone Corp" in html and "(suspended: receives nothing while suspended)" in html
    assert 'aria-label="Stop sharing with emp-new"' in html and "name not known yet" in html
    assert ('action="/learner/credentials/5b0f7a4e/employers/emp-gone/remove?lang=en"'
            in html)  # a suspended employer's share can still be stopped


def test_the_page_offers_approved_employers_by_name_for_a_new_direct_share_in_french():
    html = owner_page("fr", can_share_with=[{"id": "emp-acme", "name": "Acme Embauche"}])
    assert "Partager directement avec un employeur" in html
    assert 'action="/learner/credentials/5b0f7a4e/employers/add?lang=fr"' in html
    assert '<option value="emp-acme">Acme Embauche</option>' in html
    assert "Partager directement" not in owner_page("fr")  # nobody to offer: no form


@pytest.mark.parametrize(("lang", "created", "label", "button"), [
    ("en", "December 1, 2026", "Revoke the share link created December 1, 2026", "Revoke"),
    ("fr", "1 décembre 2026", "Révoquer le lien de partage créé le 1 décembre 2026",
     "Révoquer")])
def test_each_active_share_link_has_a_revoke_button_that_posts_to_its_own_link(
        lang, created, label, button):
    link = {"id": "0d9c1f2e-aaaa-4bbb-8ccc-123456789abc", "created": created, "expires": ""}
    html = owner_page(lang, visibility="link", links_work=True, links=[link])
    assert (f'action="/learner/credentials/5b0f7a4e/links/{link["id"]}/revoke?lang={lang}"'
            in html)
    assert f'aria-label="{label}">{button}</button>' in html
