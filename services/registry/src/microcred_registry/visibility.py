"""The visibility levels and share-link states, as pure rules (no database)."""

import re
from datetime import UTC, datetime
from typing import Any

VISIBILITIES = ("private", "link", "employers", "public")
EMPLOYER_ID = re.compile(r"^[a-z0-9-]{2,64}$")


def wider(a: str, b: str) -> str:
    return max(a, b, key=VISIBILITIES.index)


def links_work(visibility: str) -> bool:
    return VISIBILITIES.index(visibility) >= VISIBILITIES.index("link")


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
