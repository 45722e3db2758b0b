"""Badge images, baked credentials and LinkedIn against the running backbone: the issued
credential names its badge image, the registry serves it; the holder downloads the badge as
PNG and SVG with the signed credential inside (unbaked here by an independent reader: a PNG
chunk walk and Pillow, an XML parser), and both our verifier and the reference JavaScript
verifier accept what comes out; strangers get the baked files only once the holder makes
the credential public. The issue mail carries the LinkedIn "Add to profile" link; the
learner's page shows Download PNG / Download SVG / Add to LinkedIn on each credential, in
English and French, in a real browser."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from microcred_shared.contract.events import Learner
from microcred_testkit.backbone import eventually
from microcred_testkit.backbone import issue_over_http as issue
from microcred_testkit.js_verifier import js_verify
from microcred_testkit.served import served_documents as served

pytestmark = [pytest.mark.integration, pytest.mark.interop, pytest.mark.browser]
OB_NS = "https://purl.imsglobal.org/ob/v3p0"
INTEROP = Path(__file__).resolve().parents[1] / "interop"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LINK = re.compile(r"https?://\S+/learner/sign-in/[A-Za-z0-9_-]+")
JSON = {"accept": "application/json"}


# --- the helpers of test_public_page.py and test_interop_backbone.py (test modules are
# not importable from each other under --import-mode=importlib) ---------------------------

def person(tag: str, chosen: str, language: str = "en") -> Learner:
    return Learner(id=f"s-{tag}", email=f"{tag}@learners.example", given_name="Legal",
                   family_name="Name", display_name=chosen, language=language)


async def _signin_mails(bb, email):
    return [m for m in bb.smtp.to(email) if "/learner/sign-in/" in m.get_content()]


async def signed_in(bb, context, who: Learner) -> str:
    """Sign in by the mailed link (as a program); a browser gets the session cookie."""
    async with bb.http("registry") as client:
        seen = len(await _signin_mails(bb, who.email))
        assert (await client.post("/v1/learner/sign-in", json={"email": who.email})
                ).status_code == 202
        mails = await eventually(lambda: _signin_mails(bb, who.email), lambda m: len(m) > seen)
        link = LINK.search(mails[-1].get_content()).group(0)
        token = (await client.post(link.removeprefix(bb.url("registry")), headers=JSON)
                 ).json()["access_token"]
    if context is not None:
        await context.add_cookies([{"name": "microcred_session", "value": token,
                                    "url": bb.url("registry")}])
    return token


async def served_documents(bb, credential: dict) -> dict:
    async with bb.http("registry") as client:
        return await served(client, credential, bb.public_base_url)


def png_itxt(data: bytes) -> list[tuple[str, int, int, str, str, str]]:
    """Every iTXt chunk of a PNG, read straight from the bytes (PNG spec 11.3.4.5):
    keyword, compression flag and method, language tag, translated keyword, text."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        if kind == b"iTXt":
            keyword, rest = body.split(b"\x00", 1)
            flag, method, rest = rest[0], rest[1], rest[2:]
            lang, rest = rest.split(b"\x00", 1)
            translated, text = rest.split(b"\x00", 1)
            found.append((keyword.decode("latin-1"), flag, method, lang.decode(),
                          translated.decode(), text.decode("utf-8")))
        at += 12 + length
    return found


def unbake_svg(text: str) -> dict:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    first = list(root)[0]
    assert first.tag == f"{{{OB_NS}}}credential", "the credential comes first in the svg"
    assert len(root.findall(f".//{{{OB_NS}}}credential")) == 1
    assert "verify" not in first.attrib  # an embedded proof, not a VC-JWT
    return json.loads(first.text or "")


async def test_baked_png_and_svg_hold_the_signed_credential_that_both_verifiers_accept(
        backbone, tmp_path):
    from PIL import Image

    ana = person("ana-baked", "Ana Baker")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-data-analytics-fundamentals",
                       ana, score=91)
    cid, signed = cred["id"], cred["credential"]
    registry = backbone.url("registry")
    image = signed["credentialSubject"]["achievement"]["image"]
    assert image["type"] == "Image"
    assert image["id"] == f"{registry}/badges/lakeshore-data-analytics-fundamentals/v1.svg"
    assert "Data Analytics Fundamentals" in image["caption"]

    async with backbone.http("registry") as client:
        drawn = await client.get(image["id"].removeprefix(registry))
        assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/svg+xml"
        assert "max-age=86400" in drawn.headers["cache-control"]
        svg_root = ET.fromstring(drawn.content)
        assert svg_root.findtext("{http://www.w3.org/2000/svg}title") == image["caption"]
        assert (await client.get("/badges/no-such-definition/v1.svg")).status_code == 404

        # A stranger: the credential is private, so no baked copy (the same 404 as none).
        for ext in ("png", "svg"):
            assert (await client.get(f"/v1/credentials/{cid}/baked.{ext}")).status_code == 404

    token = await signed_in(backbone, None, ana)
    holder = {"authorization": f"Bearer {token}"}
    async with backbone.http("registry") as client:
        png = await client.get(f"/v1/credentials/{cid}/baked.png", headers=holder)
        svg = await client.get(f"/v1/credentials/{cid}/baked.svg", headers=holder)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert "attachment" in png.headers["content-disposition"]
    assert "no-store" in png.headers["cache-control"]
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")

    chunks = png_itxt(png.content)
    assert [c[:5] for c in chunks] == [("openbadgecredential", 0, 0, "", "")]
    from_png = json.loads(chunks[0][5])
    with Image.open(io.BytesIO(png.content)) as im:  # a real image, and Pillow reads it too
        im.load()
        assert im.size == (256, 256)
        assert json.loads(im.text["openbadgecredential"]) == from_png
    from_svg = unbake_svg(svg.text)
    assert from_png == from_svg == signed

    async with backbone.http("registry") as client:
        for extracted in (from_png, from_svg):
            r = await client.post("/credentials/verify", json={"verifiableCredential": extracted})
            assert r.status_code == 200 and r.json()["verified"] is True, r.text
        # A tampered copy does not: the image carries the proof, not a decoration.
        forged = json.loads(json.dumps(from_png))
        forged["credentialSubject"]["name"] = "Someone Else"
        r = await client.post("/credentials/verify", json={"verifiableCredential": forged})
        assert r.status_code == 400
    verdicts = js_verify([from_png, from_svg], await served_documents(backbone, from_png),
                         tmp_path)
    assert [v["verified"] for v in verdicts] == [True, True], verdicts

    # Made public, anyone may download the baked badge.
    async with backbone.http("registry") as client:
        r = await client.put(f"/v1/learner/credentials/{cid}/visibility",
                             json={"visibility": "public"}, headers=holder)
        assert r.status_code == 200, r.text
        r = await client.get(f"/v1/credentials/{cid}/baked.png")
        assert r.status_code == 200
        assert json.loads(png_itxt(r.content)[0][5]) == signed


def linkedin_fields(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.linkedin.com",
                                                        "/profile/add")
    query = parse_qs(parts.query, strict_parsing=True)
    assert all(len(v) == 1 for v in query.values()), query
    return {k: v[0] for k, v in query.items()}


async def test_the_issue_mail_carries_the_linkedin_link_with_the_credentials_fields(backbone):
    """With an expiry (60 months) in English; without one in French: no expiration
    fields, the French title and organisation name."""
    eli = person("eli-linkedin", "Eli Lin")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-data-analytics-fundamentals",
                       eli, score=80)
    doc = cred["credential"]
    issued, until = doc["awardedDate"], doc["validUntil"]
    mail = (await eventually(lambda: _issue_mails(backbone, eli.email),
                             lambda m: len(m) >= 1))[-1].get_content()
    link = next(word for word in mail.split() if word.startswith("https://www.linkedin.com/"))
    assert linkedin_fields(link) == {
        "startTask": "CERTIFICATION_NAME", "name": "Data Analytics Fundamentals",
        "organizationName": "Lakeshore College of Applied Arts and Technology",
        "issueYear": issued[:4], "issueMonth": str(int(issued[5:7])),
        "expirationYear": until[:4], "expirationMonth": str(int(until[5:7])),
        "certUrl": f"{backbone.url('registry')}/v1/credentials/{cred['id']}",
        "certId": cred["id"]}
    assert "Add it to your LinkedIn profile" in mail

    zoe = person("zoe-linkedin", "Zoé Roy", language="fr")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-workplace-safety", zoe,
                       passed=True)
    assert "validUntil" not in cred["credential"]
    mail = (await eventually(lambda: _issue_mails(backbone, zoe.email),
                             lambda m: len(m) >= 1))[-1].get_content()
    assert "Ajoutez-la à votre profil LinkedIn" in mail
    link = next(word for word in mail.split() if word.startswith("https://www.linkedin.com/"))
    fields = linkedin_fields(link)
    assert fields["name"] == "Sensibilisation à la santé et à la sécurité au travail"
    assert fields["organizationName"] == ("Collège d'arts appliqués et de technologie "
                                          "Lakeshore")
    assert "expirationYear" not in fields and "expirationMonth" not in fields
    assert fields["certId"] == cred["id"]


async def _issue_mails(bb, email):
    return [m for m in bb.smtp.to(email) if "/learner/sign-in/" not in m.get_content()]


@pytest.mark.parametrize(("lang", "png", "svg", "linkedin"), [
    ("en", "Download the badge (PNG)", "Download the badge (SVG)", "Add to LinkedIn profile"),
    ("fr", "Télécharger le badge (PNG)", "Télécharger le badge (SVG)",
     "Ajouter au profil LinkedIn")])
async def test_the_learners_page_shows_the_badge_and_its_actions_in_a_browser(
        backbone, browser, lang, png, svg, linkedin):
    who = person(f"noor-actions-{lang}", "Noor Haddad")
    cred = await issue(backbone, "lakeshore-college", "lakeshore-data-analytics-fundamentals",
                       who, score=88)
    await signed_in(backbone, browser, who)
    registry = backbone.url("registry")
    page = await browser.new_page()
    await page.goto(f"{registry}/learner?lang={lang}")
    title = "Data Analytics Fundamentals" if lang == "en" else None
    row = page.get_by_role("row").filter(has=page.locator(f'a[href$="{cred["id"]}"]'))
    await row.get_by_role("link", name=png).first.wait_for()
    async with page.expect_download() as got:
        await row.get_by_role("link", name=png).first.click()
    download = await got.value
    baked = (await download.path()).read_bytes()
    assert json.loads(png_itxt(baked)[0][5])["id"] == cred["credential"]["id"]
    assert await row.get_by_role("link", name=svg).count() == 1
    href = await row.get_by_role("link", name=linkedin).get_attribute("href")
    assert linkedin_fields(href)["certId"] == cred["id"]

    # The credential's own page, as its holder sees it: the badge with its alt text, the
    # three actions.
    await page.goto(f"{registry}/v1/credentials/{cred['id']}?lang={lang}")
    badge = page.locator("img.badge")
    alt = await badge.get_attribute("alt")
    assert alt and alt.startswith("Badge of the micro-credential" if lang == "en" else
                                  "Badge de la microcertification"), alt
    assert await badge.evaluate("img => img.complete && img.naturalWidth > 0"), \
        "the badge image loads under the page's CSP"
    actions = page.get_by_role("region", name="Download and share" if lang == "en" else
                               "Télécharger et partager")
    for name in (png, svg, linkedin):
        assert await actions.get_by_role("link", name=name).count() == 1, name
    link = await actions.get_by_role("link", name=linkedin).get_attribute("href")
    fields = linkedin_fields(link)
    assert fields["certUrl"] == f"{registry}/v1/credentials/{cred['id']}"
    if title:
        assert fields["name"] == title
    else:
        assert fields["name"] == "Fondements de l'analyse de données"
    os.makedirs(ARTIFACTS, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"credential-actions-{lang}.png"),
                          full_page=True)
