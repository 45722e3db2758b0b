"""Content negotiation: one URL for people (HTML) and for programs (the signed JSON)."""

from __future__ import annotations

JSON_TYPES = ("application/json", "application/ld+json", "application/vc+ld+json",
              "application/vc")
HTML_TYPES = ("text/html", "application/xhtml+xml")


def _weights(accept: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media:
            weights[media.lower()] = max(q, weights.get(media.lower(), 0.0))
    return weights


def wants_json(accept: str | None, *, default: bool) -> bool:
    """True when the client asks for JSON more than for HTML. Wildcards decide nothing:
    `*/*` (curl, httpx, most libraries) gets `default`; a browser names text/html."""
    weights = _weights(accept or "")
    json_q = max((weights.get(t, 0.0) for t in JSON_TYPES), default=0.0)
    html_q = max((weights.get(t, 0.0) for t in HTML_TYPES), default=0.0)
    if json_q == html_q:
        return default
    return json_q > html_q
