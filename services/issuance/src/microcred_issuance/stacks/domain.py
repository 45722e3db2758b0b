"""The rules of stacked credentials (ADR 12): when a learner's components complete a
stack, and how an award reacts when one of its components changes. Pure: no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from microcred_issuance.status.domain import Action
from microcred_shared.catalog import StackSpec


@dataclass(frozen=True)
class Held:
    credential_id: uuid.UUID
    definition_id: str
    issued_at: datetime


def completion(spec: StackSpec, held: list[Held]) -> list[Held] | None:
    """The components that complete the stack (the latest credential of each component
    definition, in the most recent window that works), or None."""
    mine = sorted((h for h in held if h.definition_id in spec.components),
                  key=lambda h: h.issued_at)
    window = timedelta(days=spec.window_days) if spec.window_days else None
    for end in reversed(range(len(mine))):
        latest: dict[str, Held] = {}
        for h in mine[: end + 1]:
            if window is None or mine[end].issued_at - h.issued_at <= window:
                latest[h.definition_id] = h
        if len(latest) >= spec.needed:
            return sorted(latest.values(),
                          key=lambda h: spec.components.index(h.definition_id))
        if window is None:
            return None  # without a window the longest prefix is the best chance
    return None


def reaction(component_status: str, award_status: str, held_by_components: bool,
             holds: bool) -> Action | None:
    """What a live award does after a component became `component_status`; `holds` says
    whether the learner's remaining active components still complete the stack (another
    credential of the same definition, or another k-of-n component, can stand in)."""
    if component_status == "active":
        return "unsuspend" if (award_status == "suspended" and held_by_components
                               and holds) else None
    if holds:
        return None
    if component_status == "revoked":
        return "revoke"
    return "suspend" if award_status == "active" else None


VERB = {"revoked": "was revoked", "suspended": "was suspended", "active": "was reinstated"}
