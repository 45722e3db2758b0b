"""Badge images, baking and the LinkedIn link, without a backbone: what a baked file holds
is read back by readers written here from the PNG and Open Badges specifications (a chunk
walk, Pillow, an XML parser), not by our baking code; the credential inside still verifies;
the drawn badge says in words what it shows; LinkedIn's form gets exactly its fields."""

from __future__ import annotations

import io
import json
import struct
import uuid
import xml.etree.ElementTree as ET
import zlib
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from microcred_registry.credentials.linkedin import add_to_profile
from microcred_registry.pages import badges
from microcred_registry.pages.domain import image_and_alt
from microcred_registry.pages.rendering import with_image_origin
from microcred_shared.vc import proofs

SVG = "{http://www.w3.org/2000/svg}"
OB = "{https://purl.imsglobal.org/ob/v3p0}"
BASE = "https://registry.microcred.example"


def credential(**changes) -> dict:
    doc = {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
                     "https://w3id.org/microcred/v1"],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "Data Analytics Fundamentals",
        "issuer": {"id": f"{BASE}/issuers/lakeshore-college", "type": ["Profile"],
                   "name": "Lakeshore College", "nameFr": "Collège Lakeshore"},
        "validFrom": "2026-11-03T10:00:00Z", "awardedDate": "2026-11-03T10:00:00Z",
        "credentialSubject": {"type": ["AchievementSubject"], "name": "Ana <b>]]> & Co",
                              "achievement": {
            "id": f"{BASE}/achievements/lakeshore-data/v1", "type": ["Achievement"],
            "name": "Data Analytics Fundamentals",
            "nameFr": "Fondements de l'analyse de données",
            "description": "Clean & explore data", "criteria": {"narrative": "Pass"},
            "level": {"framework": "Ontario Qualifications Framework",
                      "value": "Certificate II"},
            "image": {"id": f"{BASE}/badges/lakeshore-data/v1.svg", "type": "Image",
                      "caption": "Badge of the micro-credential Data Analytics Fundamentals"}}},
    }
    return doc | changes


def signed(doc: dict) -> tuple[dict, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return proofs.sign(doc, key, f"{BASE}/issuers/lakeshore-college#k1",
                       cryptosuite="eddsa-rdfc-2022"), key


def itxt_chunks(data: bytes) -> list[tuple[bytes, int, int, bytes, bytes, bytes]]:
    """The iTXt chunks of a PNG, per the PNG specification (11.3.4.5), checking CRCs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, at, kinds = [], 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == \
            zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        if kind == b"iTXt":
            keyword, rest = body.split(b"\x00", 1)
            lang, rest2 = rest[2:].split(b"\x00", 1)
            translated, text = rest2.split(b"\x00", 1)
            out.append((keyword, rest[0], rest[1], lang, translated, text))
        at += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    return out


def test_a_baked_png_holds_the_signed_credential_in_one_uncompressed_itxt_chunk():
    doc, key = signed(credential())
    image = badges.png(badges.badge_of(doc).colour())
    baked = badges.bake_png(badges.bake_png(image, {"old": True}), doc)  # re-baked: replaced
    chunks = itxt_chunks(baked)
    assert len(chunks) == 1
    keyword, flag, method, lang, translated, text = chunks[0]
    assert (keyword, flag, method, lang, translated) == (b"openbadgecredential", 0, 0, b"", b"")
    extracted = json.loads(text.decode("utf-8"))
    assert extracted == doc
    assert proofs.verify_proof_sync(extracted, lambda _vm: key.public_key()).ok
    with Image.open(io.BytesIO(baked)) as im:  # still a PNG any program opens
        im.load()
        assert im.size == (256, 256)
        assert json.loads(im.text["openbadgecredential"]) == doc


def test_the_drawn_png_is_a_visible_medal_with_a_transparent_background():
    with Image.open(io.BytesIO(badges.png((30, 80, 120)))) as im:
        rgba = im.convert("RGBA")
    assert rgba.getpixel((0, 0))[3] == 0  # corner: transparent
    assert rgba.getpixel((128, 30))[:3] == (30, 80, 120)  # the disc, in the badge's colour
    assert rgba.getpixel((128, 115))[:3] == (255, 255, 255)  # the star


def test_a_baked_svg_has_the_namespace_and_the_credential_first_in_cdata():
    doc, key = signed(credential())
    baked = badges.bake_svg(badges.svg(badges.badge_of(doc)), doc)
    assert baked.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert 'xmlns:openbadges="https://purl.imsglobal.org/ob/v3p0"' in baked.split(">", 2)[1]
    root = ET.fromstring(baked.encode("utf-8"))
    first = list(root)[0]
    assert root.tag == SVG + "svg" and first.tag == OB + "credential"
    assert "verify" not in first.attrib
    assert "<![CDATA[" in baked
    extracted = json.loads(first.text or "")
    # The learner's name holds "]]>" and "<b>": the CDATA split keeps it intact.
    assert extracted == doc
    assert extracted["credentialSubject"]["name"] == "Ana <b>]]> & Co"
    assert proofs.verify_proof_sync(extracted, lambda _vm: key.public_key()).ok
    assert len(root.findall(f".//{OB}credential")) == 1


def test_the_drawn_badge_shows_title_provider_and_level_and_says_so_in_its_title():
    doc = credential()
    doc["credentialSubject"]["achievement"]["name"] = "Safety <first> & always"
    root = ET.fromstring(badges.svg(badges.badge_of(doc)).encode())
    assert root.get("role") == "img"
    words = " ".join(t.text or "" for t in root.iter(SVG + "text"))
    for expected in ("Safety <first> &", "Lakeshore College", "Ontario Qualifications"):
        assert expected in words, words
    assert root.findtext(SVG + "title") == (
        "Badge of the micro-credential Safety <first> & always from Lakeshore College, "
        "Ontario Qualifications Framework Certificate II")
    french = badges.badge_of(credential(), "fr")
    assert french.alt == ("Badge de la microcertification Fondements de l'analyse de données "
                          "de Collège Lakeshore, Ontario Qualifications Framework "
                          "Certificate II")


def test_a_long_title_is_wrapped_and_cut_never_overflowing():
    doc = credential()
    doc["credentialSubject"]["achievement"]["name"] = " ".join(["Interdisciplinary"] * 12)
    texts = [t.text or "" for t in ET.fromstring(badges.svg(badges.badge_of(doc)).encode())
             .iter(SVG + "text")]
    assert all(len(t) <= 30 for t in texts)
    assert texts[2].endswith("…")


def test_the_page_shows_the_credentials_image_with_alt_text_in_the_readers_language():
    doc = credential()
    assert image_and_alt(doc, "en") == (
        f"{BASE}/badges/lakeshore-data/v1.svg",
        "Badge of the micro-credential Data Analytics Fundamentals")
    url, alt = image_and_alt(doc, "fr")
    assert alt.startswith("Badge de la microcertification Fondements")
    bare = credential()
    del bare["credentialSubject"]["achievement"]["image"]
    assert image_and_alt(bare, "en", f"{BASE}/badges/x/v2.svg")[0] == f"{BASE}/badges/x/v2.svg"
    assert image_and_alt(bare, "en") == ("", "")
    hostile = credential()
    hostile["credentialSubject"]["achievement"]["image"] = "javascript:alert(1)"
    assert image_and_alt(hostile, "en") == ("", "")


def test_a_providers_image_origin_is_allowed_by_the_pages_csp_and_nothing_else():
    csp = with_image_origin("https://cdn.college.example/b.png")["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.college.example;" in csp
    assert with_image_origin("http://cdn.college.example/b.png") == {}
    assert with_image_origin("https://evil.example;script-src *") == {}


def fields(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.linkedin.com",
                                                        "/profile/add")
    query = parse_qs(parts.query, strict_parsing=True)
    assert all(len(v) == 1 for v in query.values())
    return {k: v[0] for k, v in query.items()}


def test_the_linkedin_link_has_exactly_linkedins_certification_fields():
    cid = str(uuid.uuid4())
    doc = credential(validUntil="2031-11-03T10:00:00Z")
    url = f"{BASE}/v1/credentials/{cid}"
    assert fields(add_to_profile(doc, url, cid)) == {
        "startTask": "CERTIFICATION_NAME", "name": "Data Analytics Fundamentals",
        "organizationName": "Lakeshore College", "issueYear": "2026", "issueMonth": "11",
        "expirationYear": "2031", "expirationMonth": "11", "certUrl": url, "certId": cid}


def test_a_credential_without_expiry_has_no_expiration_fields_and_french_names():
    cid = str(uuid.uuid4())
    got = fields(add_to_profile(credential(), f"{BASE}/v1/credentials/{cid}", cid, "fr"))
    assert "expirationYear" not in got and "expirationMonth" not in got
    assert got["name"] == "Fondements de l'analyse de données"
    assert got["organizationName"] == "Collège Lakeshore"
    assert (got["issueYear"], got["issueMonth"]) == ("2026", "11")


def test_no_linkedin_link_without_a_name_or_an_issue_date():
    doc = credential()
    del doc["validFrom"], doc["awardedDate"]
    assert add_to_profile(doc, BASE, "x") == ""


@pytest.mark.parametrize("when", ["2026-01-31T23:59:59Z", "2026-01-31T23:59:59+00:00"])
def test_the_issue_month_is_the_credentials_own(when):
    got = fields(add_to_profile(credential(awardedDate=when), BASE + "/c", "x"))
    assert (got["issueYear"], got["issueMonth"]) == ("2026", "1")
    assert datetime.fromisoformat(when.replace("Z", "+00:00")).tzinfo == UTC


@pytest.mark.parametrize(("name", "organisation", "url", "lang"), [
    ("Data & Analytics: 100% + more", "Collège Lakeshore / Campus #2", BASE + "/v1/c/a b", "en"),
    ("Fondements de l'analyse", "École ÉTS — Montréal?x=1", "https://r.example/", "fr"),
    ("名前 ✓", "", "no-slash-at-all", "en"),
])
def test_the_linkedin_link_is_the_query_urlencode_writes(name, organisation, url, lang):
    # The announcement (and the issue mail) carries this link: built faster, the same bytes.
    doc = credential(validUntil="2031-11-03T10:00:00Z")
    doc["name"] = doc["credentialSubject"]["achievement"]["name"] = name
    doc["credentialSubject"]["achievement"].pop("nameFr", None)
    doc["issuer"] = {"name": organisation} if organisation else {}
    cid = "id with spaces/and+plus"
    params = {"startTask": "CERTIFICATION_NAME", "name": name,
              **({"organizationName": organisation} if organisation else {}),
              "issueYear": 2026, "issueMonth": 11, "expirationYear": 2031,
              "expirationMonth": 11, "certUrl": url, "certId": cid}
    for _ in range(2):  # the second time from what was remembered
        assert add_to_profile(doc, url, cid, lang) == \
            f"https://www.linkedin.com/profile/add?{urlencode(params)}"
