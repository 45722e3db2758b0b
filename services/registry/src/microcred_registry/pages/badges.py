"""Badge images and baked credentials (Open Badges 3.0, "Baked Badge"). Pure: no I/O.

Every achievement has an image: the provider's own, or the badge drawn here from what the
credential says (title, provider, level), as SVG with a text alternative. A baked badge is
that image with the signed credential embedded, so it travels as a file and still verifies:

- PNG: one `iTXt` chunk, keyword `openbadgecredential`, compression flag 0 and method 0,
  empty language tag and translated keyword, the credential's JSON as UTF-8 text;
- SVG: `xmlns:openbadges="https://purl.imsglobal.org/ob/v3p0"` on `<svg>` and, directly
  after it, one `<openbadges:credential>` whose body is the JSON in a CDATA section.

The PNG is drawn without any imaging library: a medal in the definition's colour, written
by a small PNG encoder (zlib and CRC-32 from the standard library): the shape is drawn once
as palette indices, each badge only changes the palette."""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape, quoteattr

PNG_KEYWORD = b"openbadgecredential"
SVG_NAMESPACE = "https://purl.imsglobal.org/ob/v3p0"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = 256  # the PNG's width and height


@dataclass(frozen=True)
class Badge:
    """What a drawn badge shows, and its text alternative."""

    title: str
    provider: str
    level: str
    alt: str
    seed: str  # picks the colour: the achievement's id, stable per definition version

    def colour(self) -> tuple[int, int, int]:
        hue = int(hashlib.sha256(self.seed.encode()).hexdigest()[:4], 16) / 0xFFFF
        r, g, b = colorsys.hls_to_rgb(hue, 0.32, 0.55)  # dark enough for white text
        return round(r * 255), round(g * 255), round(b * 255)


def _subject(doc: dict[str, Any]) -> dict[str, Any]:
    subject: Any = doc.get("credentialSubject") or {}
    subject = subject[0] if isinstance(subject, list) and subject else subject
    return subject if isinstance(subject, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def achievement_of(doc: dict[str, Any]) -> dict[str, Any]:
    ach = _subject(doc).get("achievement")
    return ach if isinstance(ach, dict) else {}


def image_of(doc: dict[str, Any]) -> tuple[str, str]:
    """The achievement's image as the credential names it: (URL, caption); ("", "") when
    it names none. OB 3.0 allows a bare URL or an `Image` object."""
    image = achievement_of(doc).get("image")
    if isinstance(image, str):
        return image, ""
    if isinstance(image, dict):
        return _str(image.get("id")), _str(image.get("caption"))
    return "", ""


def alt_text(title: str, provider: str, level: str, lang: str) -> str:
    """The image's text alternative in the reader's language."""
    if lang == "fr":
        text = f"Badge de la microcertification {title}"
        text += f" de {provider}" if provider else ""
    else:
        text = f"Badge of the micro-credential {title}"
        text += f" from {provider}" if provider else ""
    return text + (f", {level}" if level else "")


def badge_of(doc: dict[str, Any], lang: str = "en") -> Badge:
    """The badge a credential's achievement is drawn as."""
    ach = achievement_of(doc)
    issuer = doc.get("issuer") if isinstance(doc.get("issuer"), dict) else {}

    def local(obj: Any, term: str) -> str:
        if not isinstance(obj, dict):
            return ""
        return _str((obj.get(term + "Fr") if lang == "fr" else None) or obj.get(term))

    title = local(ach, "name") or local(doc, "name") or "Micro-credential"
    provider = local(issuer, "name")
    level_obj: dict[str, Any] = ach["level"] if isinstance(ach.get("level"), dict) else {}
    level = " ".join(_str(level_obj.get(k)) for k in ("framework", "value")
                     if _str(level_obj.get(k)))
    return Badge(title=title, provider=provider, level=level,
                 alt=alt_text(title, provider, level, lang),
                 seed=_str(ach.get("id")) or title)


def _lines(text: str, width: int, most: int) -> list[str]:
    """Greedy word wrap to `most` lines of about `width` characters (an ellipsis when cut)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word if len(word) <= width else word[:width - 1] + "…")
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][:width - 1].rstrip() + "…"
    return lines


def svg(badge: Badge) -> str:
    """The drawn badge: a medal in the definition's colour with the title, the provider and
    the level; `role="img"` with a `<title>` so screen readers announce the alt text."""
    r, g, b = badge.colour()
    fill = f"#{r:02x}{g:02x}{b:02x}"
    title = _lines(badge.title, 18, 3)
    provider = _lines(badge.provider, 28, 2)
    level = _lines(badge.level, 30, 2)
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" '
        'height="400" role="img" aria-labelledby="badge-title">',
        f"<title id=\"badge-title\">{escape(badge.alt)}</title>",
        f'<path d="M130 300 L95 395 L140 372 L160 405 L190 320 Z" fill="{fill}" '
        'opacity="0.85"/>',
        f'<path d="M270 300 L305 395 L260 372 L240 405 L210 320 Z" fill="{fill}" '
        'opacity="0.85"/>',
        f'<circle cx="200" cy="190" r="175" fill="{fill}"/>',
        '<circle cx="200" cy="190" r="158" fill="none" stroke="#ffffff" stroke-width="4" '
        'stroke-opacity="0.8"/>',
        '<g fill="#ffffff" font-family="Helvetica, Arial, sans-serif" text-anchor="middle">',
    ]
    y = 150 - 16 * (len(title) - 1)
    for line in title:
        out.append(f'<text x="200" y="{y}" font-size="27" font-weight="700">'
                   f"{escape(line)}</text>")
        y += 33
    y += 6
    for line in provider:
        out.append(f'<text x="200" y="{y}" font-size="16">{escape(line)}</text>')
        y += 20
    for line in level:
        out.append(f'<text x="200" y="{y + 4}" font-size="14" font-style="italic">'
                   f"{escape(line)}</text>")
        y += 18
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def _cdata(text: str) -> str:
    # A `]]>` inside the JSON would end the section early: split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def bake_svg(image: str, credential: dict[str, Any]) -> str:
    """`image` (one of our badges) with the credential in it, per OB 3.0 SVG baking: the
    namespace on the root element and the credential element directly after its tag."""
    match = re.search(r"<svg\b[^>]*>", image)
    if match is None:
        raise ValueError("not an SVG document")
    tag = match.group(0)
    if "xmlns:openbadges=" not in tag:
        tag = tag[:-1] + f" xmlns:openbadges={quoteattr(SVG_NAMESPACE)}>"
    body = json.dumps(credential, ensure_ascii=False, indent=2)
    element = f"\n<openbadges:credential>{_cdata(body)}</openbadges:credential>"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + image[:match.start()] + tag
            + element + image[match.end():])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image")
    out, at = [], len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        out.append((png[at + 4:at + 8], png[at + 8:at + 8 + length]))
        at += 12 + length
    return out


def bake_png(image: bytes, credential: dict[str, Any]) -> bytes:
    """`image` with the credential in one uncompressed `iTXt` chunk, keyword
    `openbadgecredential` (an earlier one is replaced: the keyword appears once), placed
    before the image data."""
    text = json.dumps(credential, ensure_ascii=False).encode("utf-8")
    itxt = PNG_KEYWORD + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + text
    out = [PNG_SIGNATURE]
    for kind, data in _chunks(image):
        if kind == b"iTXt" and data.split(b"\x00", 1)[0] == PNG_KEYWORD:
            continue
        if kind == b"IDAT" and itxt:
            out.append(_chunk(b"iTXt", itxt))
            itxt = b""
        out.append(_chunk(kind, data))
    return b"".join(out)


def _png(width: int, height: int, palette: bytes, alpha: bytes, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8-bit palette
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"PLTE", palette)
            + _chunk(b"tRNS", alpha) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _inside_ribbon(x: float, y: float) -> bool:
    """Two ribbon tails below the medal (in 0..1 coordinates), cut with a notch."""
    if y < 0.72 or y > 0.99:
        return False
    for cx, lean in ((0.36, -0.5), (0.64, 0.5)):
        centre = cx + lean * (y - 0.72)
        notch = max(0.0, (y - 0.90) * 1.0)
        if abs(x - centre) < 0.085 and abs(x - centre) >= notch:
            return True
    return False


# Palette indices of the medal: 0 transparent, 1..EDGE the disc's colour at growing
# opacity (smoothed edge), then white (ring and star) and the darker ribbon.
EDGE = 16
WHITE, RIBBON = EDGE + 1, EDGE + 2


@lru_cache(maxsize=1)
def _medal() -> bytes:
    """The medal's shape as palette indices, compressed: the same for every badge (only
    the palette changes), so it is drawn once per process."""
    star = [(0.5 + (0.17 if i % 2 == 0 else 0.07) * math.sin(i * math.pi / 5),
             0.45 - (0.17 if i % 2 == 0 else 0.07) * math.cos(i * math.pi / 5))
            for i in range(10)]
    raw = bytearray()
    for py in range(SIZE):
        raw.append(0)  # filter type 0
        for px in range(SIZE):
            x, y = (px + 0.5) / SIZE, (py + 0.5) / SIZE
            d = math.hypot(x - 0.5, y - 0.45) * SIZE
            disc = min(max(0.40 * SIZE - d + 0.5, 0.0), 1.0)
            if disc >= 1 and (0.34 * SIZE < d < 0.36 * SIZE or _in_polygon(x, y, star)):
                raw.append(WHITE)
            elif disc > 0:
                raw.append(max(1, round(disc * EDGE)))
            elif _inside_ribbon(x, y):
                raw.append(RIBBON)
            else:
                raw.append(0)
    return zlib.compress(bytes(raw), 9)


def png(colour: tuple[int, int, int]) -> bytes:
    """A medal in `colour`: a disc with a white ring and a white star, on two ribbon tails,
    transparent around it."""
    r, g, b = colour
    palette = bytes(3) + bytes((r, g, b)) * EDGE + b"\xff\xff\xff" + bytes(
        (max(r - 40, 0), max(g - 40, 0), max(b - 40, 0)))
    alpha = b"\x00" + bytes(round(255 * i / EDGE) for i in range(1, EDGE + 1)) + b"\xff\xff"
    return _png(SIZE, SIZE, palette, alpha, _medal())


def _in_polygon(x: float, y: float, points: list[tuple[float, float]]) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside
