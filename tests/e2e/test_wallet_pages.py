"""What a learner sees of "Add to wallet" (issue 11, items 1, 2 and 6; ADR 31), on the
running backbone: the learner's list and the credential's page in a real browser (Debian
chromium, microcred_testkit.browser), in English and in French, with the issuer's name and
each credential's actions — the Learner Credential Wallet's deep link and QR code, the
OpenID4VCI offer (its QR code and link, the transaction code by mail and not on the page),
LinkedIn, the downloads (JSON, baked PNG and SVG); and the issue mail, caught by the test
mail sink, whose wallet link and QR code a wallet can use once. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from microcred_shared.contract.events import Learner
from microcred_testkit.backbone import eventually, issue_over_http
from microcred_testkit.browser import read_qr, read_qr_image
from microcred_testkit.vc_examples import ExampleHolder

pytestmark = [pytest.mark.integration, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PROVIDER, DEFINITION = "lakeshore-college", "lakeshore-data-analytics-fundamentals"
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_?=-]+")
LCW = re.compile(r"https://lcw\.app/request\.html\?\S+")
JSON = {"accept": "application/json"}
SAYS = {
    "en": {"title": "Data Analytics Fundamentals",
           "issuer": "Lakeshore College of Applied Arts and Technology",
           "lcw": "Add to the Learner Credential Wallet", "oid4vci": "Add to an OpenID4VCI wallet",
           "linkedin": "Add to LinkedIn profile", "png": "Download the badge (PNG)",
           "svg": "Download the badge (SVG)", "json": "Download the signed credential (JSON)",
           "actions": "Download and share", "tx_subject": "Your wallet's transaction code"},
    "fr": {"title": "Fondements de l'analyse de données",
           "issuer": "Collège d'arts appliqués et de technologie Lakeshore",
           "lcw": "Ajouter au Learner Credential Wallet",
           "oid4vci": "Ajouter à un portefeuille OpenID4VCI",
           "linkedin": "Ajouter au profil LinkedIn", "png": "Télécharger le badge (PNG)",
           "svg": "Télécharger le badge (SVG)", "json": "Télécharger le titre signé (JSON)",
           "actions": "Télécharger et partager",
           "tx_subject": "Le code de transaction pour votre portefeuille"},
}


def person(tag: str, language: str) -> Learner:
    tag = f"{tag}-{uuid.uuid4().hex[:6]}"
    return Learner(id=f"s-{tag}", email=f"{tag}@learners.example", given_name="Noor",
                   family_name="Haddad", language=language)


async def _async(value):
    return value


async def issue(bb, who: Learner) -> dict:
    return await issue_over_http(bb, PROVIDER, DEFINITION, who, score=90)


def mails(bb, who: Learner, subject: str = "") -> list:
    return [m for m in bb.smtp.to(who.email) if subject in str(m["Subject"])]


async def signed_in(bb, context, who: Learner) -> None:
    """Sign in by the mailed link (as a program); the browser gets the session cookie."""
    def links():
        return [m for m in bb.smtp.to(who.email) if "/learner/sign-in/" in m.get_content()]
    async with bb.http("registry") as client:
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        got = await eventually(lambda: _async(links()), lambda m: len(m) >= 1)
        link = LINK.search(got[-1].get_content()).group(0)
        token = (await client.post(link.removeprefix(bb.url("registry")), headers=JSON)
                 ).json()["access_token"]
    await context.add_cookies([{"name": "microcred_session", "value": token,
                                "url": bb.url("registry")}])


def lcw_params(link: str) -> dict[str, str]:
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "lcw.app", "/request.html")
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


async def shot(page, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_the_learner_adds_a_credential_to_either_wallet_from_their_pages(
        backbone, browser, lang):
    says = SAYS[lang]
    who = person(f"wallet-page-{lang}", lang)
    cred = await issue(backbone, who)
    await signed_in(backbone, browser, who)
    registry = backbone.url("registry")
    page = await browser.new_page()

    # The list: the issuer by name (not its id), and every action on the credential's row.
    await page.goto(f"{registry}/learner?lang={lang}")
    row = page.get_by_role("row").filter(has=page.locator(f'a[href$="{cred["id"]}"]'))
    await row.wait_for()
    assert await row.get_by_role("cell", name=says["issuer"]).count() == 1
    assert PROVIDER not in await row.inner_text()
    assert await row.get_by_role("link", name=says["title"], exact=True).count() == 1
    for name in (says["png"], says["svg"], says["linkedin"]):
        assert await row.get_by_role("link", name=name).count() == 1, name
    download = row.locator(f'a[href="/v1/learner/credentials/{cred["id"]}/download"]')
    assert (await download.inner_text()).strip() == says["json"]  # the signed JSON
    for name in (says["lcw"], says["oid4vci"]):
        assert await row.get_by_role("button", name=name).count() == 1, name
    await shot(page, f"wallet-list-{lang}.png")

    # "Add to the Learner Credential Wallet": a QR code a phone reads as the deep link.
    await row.get_by_role("button", name=says["lcw"]).click()
    await page.get_by_role("heading", level=1, name=says["lcw"]).wait_for()
    assert await page.get_attribute("html", "lang") == lang
    deep_link = await page.locator("#lcw-link").get_attribute("href")
    assert deep_link and await read_qr(page.locator("figure.qr svg")) == [deep_link]
    params = lcw_params(deep_link)
    assert params["auth_type"] == "bearer"
    assert params["vc_request_url"].startswith(f"{backbone.public_base_url}/exchanges/")
    async with backbone.http("registry") as client:  # what the wallet does first
        r = await client.post(params["vc_request_url"].removeprefix(backbone.public_base_url))
    assert r.json()["verifiablePresentationRequest"]["challenge"] == params["challenge"]
    await shot(page, f"wallet-lcw-{lang}.png")

    # The credential's own page, as its holder sees it: the same actions.
    await page.goto(f"{registry}/v1/credentials/{cred['id']}?lang={lang}")
    actions = page.get_by_role("region", name=says["actions"])
    for name in (says["png"], says["svg"], says["linkedin"]):
        assert await actions.get_by_role("link", name=name).count() == 1, name
    assert await actions.get_by_role("button", name=says["lcw"]).count() == 1
    assert await page.get_by_role("link", name=says["json"], exact=True).count() == 1

    # "Add to an OpenID4VCI wallet": the offer's QR code and link; the code by mail only.
    seen = len(mails(backbone, who, says["tx_subject"]))
    await actions.get_by_role("button", name=says["oid4vci"]).click()
    offer_link = page.locator("#offer-link")
    await offer_link.wait_for()
    href = await offer_link.get_attribute("href")
    assert href and href.startswith("openid-credential-offer://?credential_offer=")
    assert await read_qr(page.locator("figure.qr svg")) == [href]
    offer = json.loads(parse_qs(urlsplit(href).query)["credential_offer"][0])
    assert offer["credential_issuer"] == backbone.public_base_url
    assert "tx_code" in offer["grants"][
        "urn:ietf:params:oauth:grant-type:pre-authorized_code"]
    text = await page.locator("main").inner_text()
    got = await eventually(lambda: _async(mails(backbone, who, says["tx_subject"])),
                           lambda m: len(m) > seen)
    code = re.search(r"^ {4}(\d{6})$", got[-1].get_content(), re.M)
    assert code and code.group(1) not in text, "the transaction code is not on the page"
    assert says["title"] in str(got[-1]["Subject"])
    await shot(page, f"wallet-oid4vci-{lang}.png")
    await page.close()


@pytest.mark.parametrize(("lang", "said"), [
    ("en", "In the Learner Credential Wallet, choose Add credential"),
    ("fr", "Dans le Learner Credential Wallet, choisissez Ajouter un titre")])
async def test_the_issue_mail_carries_a_wallet_link_and_qr_code_that_deliver_once(
        backbone, lang, said):
    who = person(f"wallet-mail-{lang}", lang)
    cred = await issue(backbone, who)
    issued = await eventually(lambda: _async([m for m in mails(backbone, who)
                                              if "lcw.app" in m.get_content()]),
                              lambda m: len(m) >= 1)
    body = issued[0].get_content()
    assert said in body
    deep_link = LCW.search(body).group(0)
    params = lcw_params(deep_link)
    exchange = params["vc_request_url"]
    qr_url = exchange + "/qr.png"
    assert qr_url in body
    path = exchange.removeprefix(backbone.public_base_url)

    async with backbone.http("registry") as client:
        # The QR code the mail links to is the deep link, as a phone camera reads it.
        r = await client.get(path + "/qr.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert read_qr_image(r.content) == [deep_link]
        # A wallet opens the mailed exchange and gets the credential bound to its DID.
        vpr = (await client.post(path)).json()["verifiablePresentationRequest"]
        assert vpr["challenge"] == params["challenge"]
        holder = ExampleHolder()
        r = await client.post(path, json={"verifiablePresentation": holder.present(
            vpr["challenge"], vpr["domain"])})
        assert r.status_code == 200, r.text
        [bound] = r.json()["verifiablePresentation"]["verifiableCredential"]
        assert bound["credentialSubject"]["id"] == holder.did
        assert bound["credentialStatus"] == cred["credential"]["credentialStatus"]
        # Once: the link and its QR code are spent.
        again = await client.post(path, json={"verifiablePresentation": holder.present(
            vpr["challenge"], vpr["domain"])})
        assert again.status_code == 409, again.text
        assert (await client.get(path + "/qr.png")).status_code == 409
