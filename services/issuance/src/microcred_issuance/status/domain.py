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

class NotSuspendable(InvalidTransition):
    """The credential has no suspension entry (its definition is not suspendable, ADR 8):
    no verifier could see a suspension, so none is recorded."""

    def __init__(self) -> None:
        super().__init__("this credential cannot be suspended; revoke it instead")

def transition(action: Action, current: str, *, suspendable: bool) -> str:
    """The status after `action`, or InvalidTransition (NotSuspendable for a suspension of
    a credential issued without a suspension entry)."""
    if action == "suspend" and not suspendable:
        raise NotSuspendable
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

def status_entries(base_url: str, provider_id: str, index: int, *,
                   suspendable: bool) -> dict[str, Any] | list[dict[str, Any]]:
    """A credential's `credentialStatus` (ADR 8): its bit in its issuer's revocation list,
    one object as the OB 3.0 JSON Schema wants it; a suspendable credential's bits in both
    the revocation and the suspension list, an array (VC 2.0 allows it, that schema not)."""
    list_no, offset = divmod(index, STATUS_LIST_SIZE)
    entries = []
    for purpose in PURPOSES if suspendable else ("revocation",):
        url = list_url(base_url, provider_id, purpose, list_no)
        entries.append({"id": f"{url}#{offset}", "type": "BitstringStatusListEntry",
                        "statusPurpose": purpose, "statusListIndex": str(offset),
                        "statusListCredential": url})
    return entries if suspendable else entries[0]
