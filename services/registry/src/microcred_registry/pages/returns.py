"""Where a browser goes after signing in: back to the page that sent it to sign in, when
that is one of the few that may ask for it (the Open Badges API's authorization request,
ADR 30), kept in a short-lived HttpOnly cookie; `/learner` otherwise. Pure."""

from __future__ import annotations

RETURN_COOKIE = "microcred_return"
RETURN_SECONDS = 900  # as long as a sign-in link lives by default
# Paths of ours a learner may be sent back to (never another origin).
RETURNABLE = ("/ims/ob/v3p0/auth/authorize?",)


def safe_return(value: str | None) -> str | None:
    """The path to go back to, if it is one of ours that may ask for it."""
    if value and value.startswith(RETURNABLE) and "\\" not in value and "//" not in value:
        return value
    return None
