"""The rules of a credential's status: where its bits live in its issuer's status lists,
and which changes are allowed. Pure: no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

STATUS_LIST_SIZE = 131_072
PURPOSES = ("revocation", "suspension")
TTL = timedelta(minutes=5)
# Lists are re-signed on every change; this bounds how stale a cached copy may be trusted.
VALIDITY = timedelta(days=30)

Action = Literal["revoke", "suspend", "unsuspend"]
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "revoke": ({"active", "suspended"}, "revoked"),
    "suspend": ({"active"}, "suspended"),
    "unsuspend": ({"suspended"}, "active")}

class InvalidTransition(ValueError):
    pass

def transition(action: Action, current: str) -> str:
    """The status after `action`, or InvalidTransition."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        raise InvalidTransition(f"cannot {action} a credential that is {current}")
    return target

def purpose_of(action: Action) -> str:
    """The list whose bit the action flips (unsuspend clears the suspension bit)."""
    return "revocation" if action == "revoke" else "suspension"

@dataclass(frozen=True)
class Changed:
    credential_id: uuid.UUID
    provider_id: str
    learner_key: str
    definition_id: str | None
    before: str
    status: str
    changed_at: datetime

def list_url(base_url: str, provider_id: str, purpose: str, list_no: int) -> str:
    return f"{base_url}/status/{provider_id}/{purpose}/{list_no}"

def status_entries(base_url: str, provider_id: str, index: int) -> list[dict[str, Any]]:
    """A credential's `credentialStatus`: its bit in both of its issuer's lists."""
    list_no, offset = divmod(index, STATUS_LIST_SIZE)
    entries = []
    for purpose in PURPOSES:
        url = list_url(base_url, provider_id, purpose, list_no)
        entries.append({"id": f"{url}#{offset}", "type": "BitstringStatusListEntry",
                        "statusPurpose": purpose, "statusListIndex": str(offset),
                        "statusListCredential": url})
    return entries
