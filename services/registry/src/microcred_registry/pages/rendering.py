"""Jinja2 rendering of the learner-facing pages, with the language chosen per request.
Pure (no database): the pages' markup is unit-tested through it."""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from microcred_registry.pages import qr
from microcred_registry.pages.i18n import choose_language, translator
from microcred_registry.pages.negotiation import wants_json

KNOWN_CHECKS = {"check.proof", "check.issuer_key", "check.validity_window", "check.status",
                "check.revocation", "check.schema"}
# The templates are package files: each is compiled once, on first use, and not looked at
# again (auto_reload would stat every template of a page on every request).
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True,
                        lstrip_blocks=True, auto_reload=False)
# `{{ qr(url, label) }}`: an inline SVG QR code, drawn on the server (qr.py).
TEMPLATES.globals["qr"] = qr.inline
# A page changes with the live status and with the language asked for. `same-origin`, not
# `no-referrer`: other sites never learn a page's URL (a share link holds its token), and
# our own forms keep their Origin header (under `no-referrer` Chromium sends `Origin: null`,
# which the learner forms' cross-site check must refuse).
PAGE_HEADERS = {"Cache-Control": "no-store", "Vary": "Accept, Accept-Language",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "img-src 'self' data:; form-action 'self'; "
                                           "frame-ancestors 'none'"}


def with_image_origin(*image_urls: str) -> dict[str, str]:
    """The page headers when it shows images from other origins (a provider's own badge
    image): those https origins are added to `img-src`, nothing else."""
    origins = []
    for url in image_urls:
        parts = urlsplit(url)
        if parts.scheme == "https" and re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?",
                                                    parts.netloc):
            origins.append(f"https://{parts.netloc}")
    if not origins:
        return {}
    csp = PAGE_HEADERS["Content-Security-Policy"].replace(
        "img-src 'self' data:", "img-src 'self' data: " + " ".join(sorted(set(origins))))
    return {"Content-Security-Policy": csp}


def language(request: Request) -> str:
    return choose_language(request.query_params.get("lang"),
                           request.headers.get("accept-language"))


def render(request: Request, template: str, *, status: int = 200, indexable: bool = False,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    lang = language(request)
    html = TEMPLATES.get_template(template).render(
        lang=lang, t=translator(lang), indexable=indexable, **context)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def message(request: Request, status: int, heading: str, *paragraphs: str,
            link: dict[str, str] | None = None, **extra: Any) -> HTMLResponse:
    t = translator(language(request))
    return render(request, "message.html", status=status, heading=t(heading),
                  paragraphs=[t(p) for p in paragraphs], link=link, **extra)


def wants_json_page(request: Request, *, default: bool) -> bool:
    fmt = request.query_params.get("format")
    if fmt in ("json", "html"):
        return fmt == "json"
    return wants_json(request.headers.get("accept"), default=default)
