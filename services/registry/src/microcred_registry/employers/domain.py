"""How the registry names employers to learners, as pure rules (no database, no table
model, so unit tests can import it): the newest directory record of each employer wins,
and an employer the directory has not told us of yet is shown by its id."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from microcred_shared.contract.events_employers import EmployerPublished

# Only these may be newly shared with; a share made before a suspension stays listed (and
# can always be stopped), marked with the employer's status.
SHAREABLE = "approved"
UNKNOWN = "unknown"


def newest(events: Iterable[EmployerPublished]) -> list[EmployerPublished]:
    """One record per employer, its newest; a batch may hold several (and redeliveries)."""
    latest: dict[str, EmployerPublished] = {}
    for e in events:
        seen = latest.get(e.employer_id)
        if seen is None or e.published_at >= seen.published_at:
            latest[e.employer_id] = e
    return list(latest.values())


def shareable(entry: Any | None) -> bool:
    return entry is not None and entry.status == SHAREABLE


def share_json(employer_id: str, since: datetime | None, entry: Any | None) -> dict[str, Any]:
    """One direct share as the learner API returns it: the name, or the id while the
    directory has not named the employer."""
    return {"employer_id": employer_id,
            "name": entry.organisation if entry else employer_id,
            "status": entry.status if entry else UNKNOWN,
            "website": entry.website if entry else None,
            "since": since.isoformat() if since else None}


def share_row(employer_id: str, since: str | None, entry: Any | None) -> dict[str, Any]:
    """One direct share as the holder's page lists it (dates already written out)."""
    return {"id": employer_id, "name": entry.organisation if entry else employer_id,
            "named": entry is not None, "status": entry.status if entry else UNKNOWN,
            "since": since}
