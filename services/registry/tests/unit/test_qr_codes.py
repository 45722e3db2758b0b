"""The QR codes the registry draws read back, with an independent decoder (zxing-cpp), as
the exact URL they stand for; the holder's sharing section shows them, in both languages."""

from __future__ import annotations

import re
from html import unescape

import pytest
import zxingcpp
from PIL import Image
from starlette.requests import Request

# Pure modules only (see test_learner_pages.py): qr and rendering touch no table model.
from microcred_registry.employers.domain import share_row
from microcred_registry.pages import qr
from microcred_registry.pages.domain import present
from microcred_registry.pages.i18n import translator
from microcred_registry.pages.rendering import render

PX = 6  # pixels per module when the drawing is turned into an image for the decoder
SHARE = "https://registry.example/c/Zq3-_0aB9xY8wVu7tS6rQ5pO4nM3lK2jI1hG0fE9dC8"
PUBLIC = "https://registry.example/v1/credentials/5b0f7a4e-2c1d-4e8f-9a6b-3c2d1e0f9a8b"


def modules(svg: str) -> list[list[bool]]:
    """The dark modules of one of our SVG drawings. segno draws each row's dark runs as one
    stroked path (`M x y` then `h n` runs and `m dx dy` moves, one unit per module, the
    stroke centred half a unit below the row's top); the white square behind is a filled
    path."""
    scale = float(re.search(r'scale\(([\d.]+)\)', svg).group(1))
    size = round(float(re.search(r'width="([\d.]+)"', svg).group(1)) / scale)
    grid = [[False] * size for _ in range(size)]
    (path,) = re.findall(r'<path stroke="#000" d="([^"]+)"', svg)
    x = y = 0.0
    for op, a, b in re.findall(r'([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?', path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for col in range(round(x), round(x + float(a))):
                grid[int(y)][col] = True
            x += float(a)
    return grid


def decoded(svg: str) -> list[str]:
    grid = modules(svg)
    size = len(grid) * PX
    image = Image.new("L", (size, size), 255)
    image.putdata([0 if grid[r // PX][c // PX] else 255
                   for r in range(size) for c in range(size)])
    return [code.text for code in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize("url", [SHARE, PUBLIC])
def test_the_qr_code_on_the_page_reads_back_as_exactly_its_url(url):
    svg = str(qr.inline(url, "QR"))
    assert decoded(svg) == [url]
    assert decoded(str(qr.inline(url + "x", "QR"))) != [url]  # the decoder tells them apart


def test_the_downloaded_qr_code_file_reads_back_as_exactly_its_url_and_names_it():
    body = qr.document(SHARE).decode()
    assert body.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in body
    assert f"<title>{SHARE}</title>" in body
    assert "<script" not in body
    assert decoded(body) == [SHARE]


def test_the_qr_code_is_announced_to_screen_readers_and_its_label_is_escaped():
    svg = str(qr.inline(PUBLIC, 'QR "<b>"'))
    assert svg.startswith('<svg role="img" aria-label="QR &#34;&lt;b&gt;&#34;"')


DOC = {"name": "Workplace Health and Safety Awareness", "validFrom": "2026-11-30T10:00:00Z",
       "issuer": {"name": "Lakeshore College", "address": {"addressRegion": "CA-ON"}},
       "credentialSubject": {"name": "Ana Silva", "achievement": {
           "name": "Workplace Health and Safety Awareness"}}}
VALID = {"verified": True, "status": "valid", "checks": [], "problems": []}


def owner_page(lang: str, **owner: object) -> str:
    t = translator(lang)
    view = present(DOC, VALID, lang, t)
    mine = {"id": "5b0f7a4e", "visibility": "public", "links_work": True, "public": None,
            "new_link": None, "links": [], "employers": [], "can_share_with": [], "notice": None,
            **owner}
    req = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                   "query_string": f"lang={lang}".encode()})
    return render(req, "credential.html", c=view, preview="", canonical=PUBLIC,
                  json_url=PUBLIC, checked_at="now", owner=mine).body.decode()


def shown(url: str, lang: str) -> dict[str, object]:
    t = translator(lang)
    return {"url": url, "qr": qr.inline(url, t("qr.label", url=url)),
            "download": url + "/qr.svg"}


def test_the_holders_section_shows_the_qr_codes_and_the_employers_with_a_remove_form():
    html = owner_page("en", public=shown(PUBLIC, "en"), new_link=shown(SHARE, "en"),
                      employers=[share_row("acme-hiring", "December 1, 2026", None)])
    assert f'aria-label="QR code of {PUBLIC}"' in html
    assert f'aria-label="QR code of {SHARE}"' in html
    assert f'href="{SHARE}/qr.svg" download' in html
    assert "acme-hiring" in html and "December 1, 2026" in html
    assert ('<form method="post" action="/learner/credentials/5b0f7a4e/employers/'
            'acme-hiring/remove?lang=en">') in html
    assert 'aria-label="Stop sharing with acme-hiring"' in html


def test_the_holders_section_reads_in_french_and_says_when_there_is_nothing_to_share():
    html = owner_page("fr", visibility="private", links_work=False)
    assert "Partage (vous seul voyez ceci)" in html and "Moi seulement" in html
    assert "Rendez ce titre public pour obtenir un code QR" in html
    assert "Vous n'avez partagé ce titre directement avec aucun employeur." in unescape(html)
    assert '<svg role="img" aria-label="Code QR' not in html


def test_a_page_for_anyone_but_the_holder_has_no_sharing_section():
    t = translator("en")
    html = render(Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                           "query_string": b""}), "credential.html",
                  c=present(DOC, VALID, "en", t), preview="", canonical=PUBLIC,
                  json_url=PUBLIC, checked_at="now").body.decode()
    assert "Sharing (only you see this)" not in html and "/qr.svg" not in html


def test_pages_keep_their_url_from_other_sites_but_our_own_forms_keep_their_origin():
    # Under no-referrer Chromium posts our own forms with `Origin: null`, which the
    # cross-site check must refuse; same-origin still tells other sites nothing.
    req = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                   "query_string": b""})
    page = render(req, "message.html", heading="h", paragraphs=[])
    assert page.headers["referrer-policy"] == "same-origin"
