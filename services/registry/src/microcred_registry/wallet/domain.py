"""The learner's wallet as pure rules (no database, no HTTP): who a credential is shown to
(visibility levels and share-link states), what a signed-in session is, which requests
may act for a learner, and the shapes the learner API returns.

Visibility widens step by step (docs/decisions/0009-learner-access-and-sharing.md):
private (the learner, plus employers it was shared with directly) < link (+ anyone holding
a live share link, at the link's URL) < employers (+ every approved employer) < public
(+ anyone: the credential's own URL and the public profile). The holder, the issuer and the
operator read it at every level; by its id, one rule (`may_read`) governs everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

VISIBILITIES = ("private", "link", "employers", "public")
EMPLOYER_ID = re.compile(r"^[a-z0-9-]{2,64}$")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SIGNIN_LANGUAGES = ("en", "fr")
# A session secret is handed out with this prefix (bearer token and cookie alike).
BEARER_PREFIX = "mcl_"
SESSION_COOKIE = "microcred_session"


@dataclass(frozen=True)
class Session:
    learner_key: str
    expires_at: datetime


@dataclass(frozen=True)
class SignInPolicy:
    link_ttl: timedelta
    session_ttl: timedelta
    rate_limit: int
    rate_window: timedelta


@dataclass(frozen=True)
class Viewer:
    """Who asks for a credential by its id: at most one of a signed-in learner, a provider
    (its API key), an approved employer (its API key) or the operator; none is anyone."""

    learner_key: str | None = None
    provider_id: str | None = None
    employer_id: str | None = None
    operator: bool = False


ANYONE = Viewer()
# Visibilities at which every approved employer may read a credential (as notify's feed).
OPEN_TO_EMPLOYERS = ("employers", "public")


def reaches_employers(visibility: str, shared_with: list[str]) -> bool:
    """Whether some employer may see a credential at this level (every approved employer,
    or those it is shared with directly): its visibility event then carries the document
    notify's employer feed hands out (ADR 10)."""
    return visibility in OPEN_TO_EMPLOYERS or bool(shared_with)


def may_read(viewer: Viewer, *, holder: str, issuer: str, visibility: str,
             shared_with: list[str]) -> bool:
    """Whether `viewer` may read a credential by its id (its JSON, its page, its verification,
    its QR code): the operator, the holder and the provider that issued it always; anyone
    when it is public; an approved employer while it is shared with it directly or open to
    employers. A share link is read through the link's own URL, never by the id, so revoking
    the link (or making the credential private) ends what it gave."""
    if viewer.operator or visibility == "public":
        return True
    if viewer.learner_key is not None and viewer.learner_key == holder:
        return True
    if viewer.provider_id is not None and viewer.provider_id == issuer:
        return True
    return viewer.employer_id is not None and (
        visibility in OPEN_TO_EMPLOYERS or viewer.employer_id in shared_with)


def wider(a: str, b: str) -> str:
    return max(a, b, key=VISIBILITIES.index)


def links_work(visibility: str) -> bool:
    return VISIBILITIES.index(visibility) >= VISIBILITIES.index("link")


def signin_language(language: str) -> str:
    """The language of the sign-in mail: one we write in, English otherwise."""
    return language if language in SIGNIN_LANGUAGES else "en"


def same_origin(method: str, origin: str | None, base: str, request_origin: str) -> bool:
    """Whether a cookie-authenticated request may act: reading always; a change only from
    our own pages (no Origin, the public base URL's, or the request's own)."""
    if method in SAFE_METHODS:
        return True
    return origin in (None, "{0.scheme}://{0.netloc}".format(urlsplit(base)), request_origin)


def share_expiry(expires_at: datetime | None, expires_in_days: int | None,
                 now: datetime) -> datetime | None:
    """When a new share link stops working (None: never). ValueError for a time in the
    past or without a time zone."""
    expires = expires_at or (now + timedelta(days=expires_in_days)
                             if expires_in_days else None)
    if expires is not None and (expires.tzinfo is None or expires <= now):
        raise ValueError("expires_at must be a future time with a time zone")
    return expires


def link_json(link: Any, base: str, token: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    state = "revoked" if link.revoked_at else "expired" if (
        link.expires_at and link.expires_at <= now) else "active"
    out: dict[str, Any] = {
        "id": str(link.id), "state": state, "created_at": link.created_at.isoformat(),
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "revoked_at": link.revoked_at.isoformat() if link.revoked_at else None}
    if token:
        out["url"] = f"{base}/c/{token}"
    return out


def summary(row: Any, visibility: str, shared_with: list[str], base: str) -> dict[str, Any]:
    """One of the learner's credentials with who can see it (the learner API)."""
    cid = row.credential_id
    return {"id": str(cid), "title": row.title, "provider": row.provider_id,
            "status": row.status, "issued_at": row.issued_at.isoformat(),
            "visibility": visibility, "shared_with": shared_with,
            "url": f"{base}/v1/credentials/{cid}",
            "download_url": f"{base}/v1/learner/credentials/{cid}/download"}


def export_bundle(documents: list[dict[str, Any]], now: datetime,
                  ) -> tuple[str, dict[str, Any]]:
    """Every signed credential of the learner in one file: (file name, content)."""
    bundle = {"type": "MicrocredCredentialExport", "exported_at": now.isoformat(),
              "count": len(documents), "credentials": documents}
    return f"microcred-credentials-{now:%Y%m%d}.json", bundle
