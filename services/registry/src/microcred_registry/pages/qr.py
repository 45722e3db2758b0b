"""QR codes of the URLs a learner shares (a share link, the public page), drawn as SVG on
the server with segno: no script on the page, no outside service that would learn the link.
Pure (no I/O): the codes are read back by an independent decoder in the unit tests."""

from __future__ import annotations

import io

import segno
from markupsafe import Markup, escape

# Error correction M at least (segno raises it when the symbol has room to spare): a printed
# code survives a crease or a smudge; black on white with the standard 4-module quiet zone.
ERROR = "m"
BORDER = 4
SVG = "image/svg+xml"


def _code(url: str) -> segno.QRCode:
    return segno.make_qr(url, error=ERROR)


def inline(url: str, label: str, *, scale: int = 4) -> Markup:
    """An `<svg>` element for a page, announced to screen readers by `label`."""
    svg = _code(url).svg_inline(scale=scale, border=BORDER, dark="#000", light="#fff",
                                svgclass="qr", lineclass=None)
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1))


def document(url: str, *, scale: int = 10) -> bytes:
    """A standalone SVG file (for print: about 4 cm at 10 units per module)."""
    out = io.BytesIO()
    _code(url).save(out, kind="svg", scale=scale, border=BORDER, dark="#000", light="#fff",
                    title=url, xmldecl=True, svgclass=None, lineclass=None)
    return out.getvalue()


def png(url: str, *, scale: int = 6) -> bytes:
    """A PNG file (what mail readers show: the issue mail links to one)."""
    out = io.BytesIO()
    _code(url).save(out, kind="png", scale=scale, border=BORDER, dark="#000", light="#fff")
    return out.getvalue()
