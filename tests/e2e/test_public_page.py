"""The public credential page in a real browser (Playwright driving Debian's chromium): what a
person sees for a valid and for a revoked credential, in English and French, with the live
verification result. Screenshots are kept under test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from microcred_shared.events import Learner, learner_key
from microcred_shared.testing import eventually, result

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
JSON = {"accept": "application/json"}


def person(tag: str, chosen: str) -> Learner:
    return Learner(id=f"s-{tag}", email=f"{tag}@learners.example", given_name="Legal",
                   family_name="Name", display_name=chosen)


async def issue(bb, provider: str, definition: str, who: Learner, **outcome) -> dict:
    path = f"/v1/learners/{learner_key(who.email)}/credentials"
    async with bb.http("assessment", bb.api_keys[provider]) as client:
        r = await client.post("/v1/assessment-results", content=result(
            provider, definition, who=who, **outcome).model_dump_json(),
            headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text
    async with bb.http("registry", bb.operator_token) as client:
        body = await eventually(lambda: _json(client.get(path)), lambda b: b["count"] >= 1)
    return body["credentials"][-1]


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


@pytest.fixture
async def browser(tmp_path):
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per test, before any I/O
        pytest.fail("Debian chromium is missing: `make install` installs it")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=False, args=ARGS)
        try:
            yield context
        finally:
            await context.close()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


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
    async with backbone.http("registry") as client:
        await eventually(lambda: _json(client.get(f"/v1/credentials/{cred['id']}/verification")),
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
