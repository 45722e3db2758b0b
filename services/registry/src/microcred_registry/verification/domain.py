"""Verification results as the registry reports them, as pure rules: the JSON of a result,
and the VC-API answer (200 when the credential verifies, a 400 problem naming the failed
checks when not)."""

from __future__ import annotations

from typing import Any

from microcred_shared.vc.presentation import PresentationResult
from microcred_shared.vc.verify import VerificationResult


def as_json(result: VerificationResult) -> dict[str, Any]:
    return {
        "verified": result.verified,
        "status": result.status,
        "checks": [{"check": name, "ok": c.ok, "detail": c.detail}
                   for name, c in result.checks.items()],
        "problems": result.problems(),
    }


def presentation_json(result: PresentationResult) -> dict[str, Any]:
    """A presentation's result: its own checks, then each credential's as on its own."""
    return {
        "verified": result.verified,
        "checks": [{"check": name, "ok": c.ok, "detail": c.detail}
                   for name, c in result.checks.items()],
        "credentialResults": [as_json(r) for r in result.credentials],
        "problems": result.problems(),
    }


def vcapi_failure(result: dict[str, Any], type_base: str) -> dict[str, Any]:
    """The problem body of a credential that does not verify: the checks stay in it."""
    return {"type": type_base + "verification-failed", "title": "Verification failed",
            "status": 400, "detail": "; ".join(result["problems"]), **result}


def is_local(url: str, base: str) -> bool:
    """Whether the registry serves `url` itself (read from the database, never fetched)."""
    return url.startswith(base + "/")
