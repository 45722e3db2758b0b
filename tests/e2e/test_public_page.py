"""The public credential page in a real browser (Playwright driving Debian's chromium): what a
person sees for a valid and for a revoked credential, in English and French, with the live
verification result; what its holder sees: QR codes to share it, and the employers it is
shared with directly (by the organisation's name), with a way to stop, and its share links,
with a way to revoke them. Screenshots are kept under test-artifacts/."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from microcred_shared.contract.events import Learner
from microcred_testkit.backbone import approved_employer, eventually
from microcred_testkit.backbone import issue_over_http as issue
from microcred_testkit.browser import read_qr

pytestmark = [pytest.mark.integration, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
JSON = {"accept": "application/json"}


def person(tag: str, chosen: str) -> Learner:
    return Learner(id=f"s-{tag}", email=f"{tag}@learners.example", given_name="Legal",
                   family_name="Name", display_name=chosen)


async def _json(request):
    return (await request).json()


async def share_link(bb, who: Learner, credential_id: str) -> str:
    async with bb.http("registry") as client:
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        mails = await eventually(lambda: _mails(bb, who.email), lambda m: len(m) >= 1)
        link = LINK.search(mails[-1].get_content()).group(0)
        token = (await client.post(link.removeprefix(bb.url("registry")), headers=JSON)
                 ).json()["access_token"]
        r = await client.post(f"/v1/learner/credentials/{credential_id}/shares", json={},
                              headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return r.json()["url"]


async def _mails(bb, email):
    return [m for m in bb.smtp.to(email) if "/learner/sign-in/" in m.get_content()]


async def look(context, url: str, shot: str) -> dict:
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None and response.status == 200
    seen = {
        "lang": await page.get_attribute("html", "lang"),
        "title": await page.get_by_role("heading", level=1).inner_text(),
        "status": await page.get_by_role("status").inner_text(),
        "text": await page.locator("main").inner_text(),
        "og": await page.get_attribute('meta[property="og:title"]', "content"),
    }
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    await page.close()
    return seen


async def test_a_person_opening_a_shared_valid_credential_sees_who_earned_what_and_valid(
        backbone, browser):
    ana = person("ana-page-valid", "Ana María Silva")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", ana,
                       passed=True)
    url = await share_link(backbone, ana, cred["id"])

    en = await look(browser, url, "public-page-valid-en.png")
    assert en["lang"] == "en"
    assert en["title"] == "Workplace Health and Safety Awareness"
    assert "Ana María Silva" in en["text"] and "Ontario" in en["text"]
    assert "Lakeshore" in en["text"] and "Learning outcomes" in en["text"]
    assert en["status"].strip() == "Valid"
    assert en["og"].startswith("Workplace Health and Safety Awareness")

    fr = await look(browser, url + "?lang=fr", "public-page-valid-fr.png")
    assert fr["lang"] == "fr" and fr["status"].strip() == "Valide"
    assert "Décernée à" in fr["text"] and "Ana María Silva" in fr["text"]


async def test_a_person_opening_a_revoked_credential_sees_revoked_and_the_reasons(
        backbone, browser):
    rui = person("rui-page-revoked", "Rui Tremblay")
    cred = await issue(backbone, "coast-mountain-university", "cmu-sustainable-forestry", rui,
                       rubric_level="proficient")
    url = await share_link(backbone, rui, cred["id"])
    async with backbone.http("issuance", backbone.api_keys["coast-mountain-university"]) as c:
        r = await c.post(f"/v1/credentials/{cred['id']}/status",
                         json={"action": "revoke", "reason": "assessment found invalid"})
        assert r.status_code == 200, r.text
    # The credential is shared by link only (ADR 9): its issuer reads its verification.
    async with backbone.http("registry", backbone.api_keys["coast-mountain-university"]) as c2:
        await eventually(lambda: _json(c2.get(f"/v1/credentials/{cred['id']}/verification")),
                         lambda v: v["status"] == "revoked")

    en = await look(browser, url, "public-page-revoked-en.png")
    assert en["status"].strip() == "Revoked"
    assert "Rui Tremblay" in en["text"] and "British Columbia" in en["text"]
    assert "assessment found invalid" in en["text"]  # the issuer's reason
    assert "revocation bit" in en["text"]  # the verifier's reason

    fr = await look(browser, url + "?lang=fr", "public-page-revoked-fr.png")
    assert fr["status"].strip() == "Révoquée" and "Colombie-Britannique" in fr["text"]


async def test_a_learner_signs_in_from_the_mail_in_a_browser_and_sees_their_credentials(
        backbone, browser):
    lea = person("lea-browser", "Léa Gagnon")
    await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", lea, passed=True)
    page = await browser.new_page()
    await page.goto(backbone.url("registry") + "/learner")
    await page.get_by_label("E-mail address").fill(lea.email)
    await page.get_by_role("button", name="Send me a sign-in link").click()
    await page.get_by_role("heading", name="Check your e-mail").wait_for()
    mails = await eventually(lambda: _mails(backbone, lea.email), lambda m: len(m) >= 1)
    await page.goto(LINK.search(mails[-1].get_content()).group(0))
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="My credentials").wait_for()
    assert "Workplace Health and Safety Awareness" in await page.locator("main").inner_text()
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "learner-home.png"), full_page=True)


async def signed_in(bb, context, who: Learner) -> str:
    """Sign in by the mailed link (as a program) and hand the session to the browser: the
    cookie and the bearer token are the same value (ADR 9)."""
    async with bb.http("registry") as client:
        seen = len(await _mails(bb, who.email))
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        mails = await eventually(lambda: _mails(bb, who.email), lambda m: len(m) > seen)
        link = LINK.search(mails[-1].get_content()).group(0)
        token = (await client.post(link.removeprefix(bb.url("registry")), headers=JSON)
                 ).json()["access_token"]
    await context.add_cookies([{"name": "microcred_session", "value": token,
                                "url": bb.url("registry")}])
    return token


async def test_a_learner_gets_qr_codes_of_a_new_share_link_and_of_the_public_page(
        backbone, browser):
    zoe = person("zoe-qr", "Zoé Bouchard")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", zoe,
                       passed=True)
    token = await signed_in(backbone, browser, zoe)
    registry, own_url = backbone.url("registry"), f"/v1/credentials/{cred['id']}"
    page = await browser.new_page()
    await page.goto(registry + own_url)
    assert "Make this credential public to get a QR code" in await page.locator(
        "main").inner_text()

    await page.get_by_role("button", name="Create a share link with a QR code").click()
    fresh = page.locator("#new-link")
    await fresh.wait_for()
    link = await fresh.get_by_role("link").first.get_attribute("href")
    assert link.startswith(registry + "/c/")
    assert await read_qr(fresh.locator("svg")) == [link]
    async with page.expect_download() as download_info:
        await fresh.get_by_role("link", name="Download the QR code (SVG)").click()
    download = await download_info.value
    assert download.suggested_filename == "share-link-qr.svg"
    svg = Path(await download.path()).read_text()  # noqa: ASYNC240 - a small local file
    drawn = await browser.new_page()
    await drawn.set_content(f"<body style='margin:0;background:#fff'>{svg}</body>")
    assert await read_qr(drawn.locator("svg")) == [link]  # the file, as printed
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "learner-share-link-qr.png"), full_page=True)

    # The list of all my credentials draws the code of a link made there too.
    await page.goto(registry + "/learner")
    await page.get_by_role("button", name="Create a share link").click()
    listed = page.get_by_role("status").filter(has_text="New share link")
    other = await listed.get_by_role("link").first.get_attribute("href")
    assert other != link and await read_qr(listed.locator("svg")) == [other]

    async with backbone.http("registry", token) as me, backbone.http("registry") as anyone:
        opened = await anyone.get(link.removeprefix(registry), headers=JSON)
        assert opened.json() == cred["credential"]  # the link the code holds works
        qr_path = own_url + "/qr.svg"
        assert (await anyone.get(qr_path)).status_code == 404  # not public: not to strangers
        mine = await me.get(qr_path)
        assert mine.status_code == 200 and mine.headers["content-type"] == "image/svg+xml"
        assert mine.headers["cache-control"] == "private, no-store"
        await me.put(f"/v1/learner/credentials/{cred['id']}/visibility",
                     json={"visibility": "public"})
        public = await anyone.get(qr_path)
        assert public.status_code == 200 and public.headers["cache-control"].startswith(
            "public")
        assert "attachment" in public.headers["content-disposition"]

    await page.goto(registry + own_url)
    figure = page.locator("figure.qr")
    assert await read_qr(figure.locator("svg")) == [registry + own_url]
    await page.screenshot(path=str(ARTIFACTS / "learner-credential-qr-en.png"), full_page=True)
    await page.goto(registry + own_url + "?lang=fr")
    assert "Code QR de la page publique" in await page.locator("main").inner_text()
    await page.screenshot(path=str(ARTIFACTS / "learner-credential-qr-fr.png"), full_page=True)

    async with backbone.http("registry", token) as me, backbone.http("registry") as anyone:
        await me.put(f"/v1/learner/credentials/{cred['id']}/visibility",
                     json={"visibility": "private"})
        assert (await anyone.get(qr_path)).status_code == 404
        # Private withdraws every link: its QR code is not drawn for anyone either.
        assert (await anyone.get(link.removeprefix(registry) + "/qr.svg")).status_code == 410


async def test_a_learner_sees_a_direct_employer_share_on_the_page_and_removing_it_ends_access(
        backbone, browser):
    yan = person("yan-employer", "Yan Côté")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", yan,
                       passed=True)
    employer_id, key = await approved_employer(backbone, "page-unshare Inc.")
    async with backbone.http("notify", key) as client:
        # Ontario credential, Quebec filter: only the direct share lets it through.
        r = await client.post("/v1/employer/subscriptions",
                              json={"filters": {"jurisdictions": ["CA-QC"]}})
        assert r.status_code == 201, r.text
    organisation = "page-unshare Inc."
    token = await signed_in(backbone, browser, yan)
    async with backbone.http("registry", token) as me:
        # The registry learns of the approval from notify's employer directory.
        r = await eventually(lambda: me.put(
            f"/v1/learner/credentials/{cred['id']}/employers/{employer_id}"),
            lambda r: r.status_code == 200)
        assert r.status_code == 200 and r.json()["shared_with"] == [employer_id]
        detail = (await me.get(f"/v1/learner/credentials/{cred['id']}")).json()
        assert [(s["employer_id"], s["name"]) for s in detail["employer_shares"]] == [
            (employer_id, organisation)]
        assert detail["employer_shares"][0]["since"]
    shared = await eventually(lambda: feed_of(backbone, key, cred["id"]), lambda f: f)
    assert shared[0]["type"] == "credential.shared"
    assert shared[0]["data"]["credential"] == cred["credential"]

    page = await browser.new_page()
    await page.goto(backbone.url("registry") + f"/v1/credentials/{cred['id']}")
    row = page.get_by_role("row").filter(has_text=organisation)
    assert "Shared since" in await page.locator("main").inner_text()
    assert str(datetime.now(UTC).year) in await row.inner_text()
    assert f"Employer id: {employer_id}" in await row.inner_text()  # the name, then the id
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "learner-employer-shares.png"), full_page=True)
    await page.get_by_role("button", name=f"Stop sharing with {organisation}").click()
    notice = page.get_by_text(f"{organisation} can no longer see this credential.")
    await notice.wait_for()
    assert await page.get_by_role("row").filter(has_text=employer_id).count() == 0
    assert "You have not shared this credential directly with any employer." in \
        await page.locator("main").inner_text()
    await page.screenshot(path=str(ARTIFACTS / "learner-employer-removed.png"), full_page=True)

    feed = await eventually(lambda: feed_of(backbone, key, cred["id"]), lambda f: len(f) >= 2)
    assert [e["type"] for e in feed] == ["credential.shared", "credential.unshared"]
    assert feed[0].get("redacted") and "credential" not in feed[0]["data"]
    async with backbone.http("registry", token) as me:
        mine = (await me.get(f"/v1/learner/credentials/{cred['id']}")).json()
    assert mine["shared_with"] == [] and mine["visibility"] == "private"


async def test_a_learner_shares_with_an_employer_chosen_by_name_and_revokes_a_link_on_the_page(
        backbone, browser):
    noa = person("noa-revoke", "Noa Lévesque")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", noa,
                       passed=True)
    employer_id, _ = await approved_employer(backbone, "page-choose Inc.")
    organisation = "page-choose Inc."
    token = await signed_in(backbone, browser, noa)
    registry = backbone.url("registry")
    async with backbone.http("registry", token) as me:
        await eventually(lambda: _json(me.get("/v1/learner/employers")),
                         lambda b: employer_id in {e["id"] for e in b["employers"]})
        link = (await me.post(f"/v1/learner/credentials/{cred['id']}/shares", json={})
                ).json()["url"]

    page = await browser.new_page()
    await page.goto(registry + f"/v1/credentials/{cred['id']}")
    await page.get_by_label("Employer", exact=True).select_option(label=organisation)
    await page.get_by_role("button", name="Share", exact=True).click()
    await page.get_by_text(f"{organisation} can now see this credential.").wait_for()
    row = page.get_by_role("row").filter(has_text=organisation)
    assert f"Employer id: {employer_id}" in await row.inner_text()

    async with backbone.http("registry") as anyone:
        assert (await anyone.get(link.removeprefix(registry), headers=JSON)).status_code == 200
        await page.get_by_role("button", name=re.compile(
            r"^Revoke the share link created ")).click()
        await page.get_by_text("The share link was revoked").wait_for()
        assert "No active share link." in await page.locator("main").inner_text()
        await page.screenshot(path=str(ARTIFACTS / "learner-link-revoked.png"), full_page=True)
        gone = await anyone.get(link.removeprefix(registry), headers=JSON)
        assert gone.status_code == 410
        assert (await anyone.get(link.removeprefix(registry) + "/qr.svg")).status_code == 410

    # A suspension reaches the learner's page too; the share stays listed, and can be stopped.
    async with backbone.http("notify", backbone.operator_token) as client:
        assert (await client.post(f"/v1/admin/employers/{employer_id}/suspend")
                ).status_code == 200
    async with backbone.http("registry", token) as me:
        detail = await eventually(
            lambda: _json(me.get(f"/v1/learner/credentials/{cred['id']}")),
            lambda d: d["employer_shares"][0]["status"] == "suspended")
        assert detail["employer_shares"][0]["name"] == organisation
    await page.goto(registry + f"/v1/credentials/{cred['id']}?lang=fr")
    assert "suspendu" in await page.get_by_role("row").filter(
        has_text=organisation).inner_text()
    assert await page.get_by_role("button", name=f"Ne plus partager avec {organisation}"
                                  ).count() == 1


async def feed_of(bb, key: str, credential_id: str) -> list[dict]:
    async with bb.http("notify", key) as client:
        r = await client.get("/v1/employer/feed", params={"limit": 500})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["data"]["credential_id"] == credential_id]
