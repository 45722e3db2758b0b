"""Catalogue rules: how an operator's change turns into the next version of a provider or
a credential definition. Pure: the handlers check, lock and publish.

Versions only go up; a provider's status changes only through suspend/reactivate (an edit
keeps it); a definition's owner never changes; a retired definition stays retired.
"""

from __future__ import annotations

from typing import Literal

from microcred_shared.catalog import Definition, Provider

Status = Literal["active", "suspended"]


def onboarded(given: Provider) -> Provider:
    return given.model_copy(update={"version": 1})


def edited(current: Provider, given: Provider) -> Provider:
    """Replace what the operator may edit; status changes go through `with_status`."""
    return given.model_copy(update={"version": current.version + 1, "status": current.status,
                                    "status_reason": current.status_reason})


def with_status(current: Provider, status: Status, reason: str) -> Provider:
    """Suspended with the reason (new results are refused with it), or active again."""
    return current.model_copy(update={
        "version": current.version + 1, "status": status,
        "status_reason": reason if status == "suspended" else None})


def status_action(status: Status) -> str:
    return "provider.suspend" if status == "suspended" else "provider.reactivate"


def first_version(given: Definition, *, keep_version: bool = False) -> Definition:
    """Version 1, active; the seed keeps the version its file gives."""
    return given if keep_version else given.model_copy(update={"version": 1,
                                                                "status": "active"})


def next_version(current: Definition, given: Definition) -> Definition:
    """A changed definition is a new version; credentials keep the version they were
    issued under."""
    return given.model_copy(update={"version": current.version + 1, "status": "active"})


def retired(current: Definition) -> Definition:
    return current.model_copy(update={"status": "retired"})


def assessable(component: Definition | None) -> bool:
    """Whether a stack may name it as a component: a definition one is assessed on."""
    return component is not None and component.stack is None
