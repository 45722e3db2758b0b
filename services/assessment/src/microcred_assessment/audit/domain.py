"""Refusals inside the Kafka broker become operator audit entries (ADR 13).

The broker knows the SCRAM user name that failed or was denied; assessment knows whose it
is and what became of it (ADR 11: one principal per provider, rotated or revoked by an
operator), so the entry says which provider was concerned and, as far as anyone can tell,
why: an unknown name, a revoked principal, or a wrong password (after a rotation: perhaps
the retired one; the broker cannot tell which wrong password was tried). A service's own
principal `svc-<service>` (ADR 19) is named as `service:<service>`.

Pure: the principal's state is looked up by the caller (access knows the principals).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from microcred_shared.contract.events_providers import AuditRecorded, BrokerRefusalObserved
from microcred_shared.contract.topics import service_of_user


class PrincipalState(Protocol):
    """What the attribution needs of a provider's Kafka principal (access.models)."""

    @property
    def provider_id(self) -> str: ...
    @property
    def rotated_at(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _login_reason(e: BrokerRefusalObserved, row: PrincipalState | None) -> tuple[str, str]:
    """(principal state, reason) for a failed SASL login."""
    who = f"{e.mechanism or 'SASL'} login as {e.username!r} refused by the broker"
    if row is None and service_of_user(e.username):
        return "service", f"{who}: wrong password for a service principal (ADR 19)"
    if row is None:
        return "unknown", f"{who}: no such principal"
    if row.revoked_at is not None and e.observed_at >= row.revoked_at:
        return "revoked", f"{who}: the principal was revoked at {_when(row.revoked_at)}"
    if row.rotated_at is not None and e.observed_at >= row.rotated_at:
        return "rotated", (f"{who}: wrong password (the password was rotated at "
                           f"{_when(row.rotated_at)}; a retired password fails this way)")
    return "active", f"{who}: wrong password"


def refusal_entry(e: BrokerRefusalObserved, row: PrincipalState | None) -> AuditRecorded:
    """The audit entry of one broker refusal; `row` is the principal of its user name."""
    details = {k: v for k, v in {
        "kind": e.kind, "username": e.user, "mechanism": e.mechanism, "host": e.host,
        "listener": e.listener, "request": e.request, "broker_reason": e.reason,
    }.items() if v}
    provider = row.provider_id if row is not None else None
    if e.kind == "authentication-failed":
        state, reason = _login_reason(e, row)
        details["principal_state"] = state
        actor, action = "anonymous", "kafka.authentication"
    else:
        resource = f"{(e.resource_type or '').lower()} {e.resource_name}"
        details.update(operation=e.operation or "", resource=resource.strip())
        why = e.reason or "denied by the broker's ACLs"  # or the listener rule (ADR 21)
        reason = f"{e.principal} may not {e.operation} {resource} ({e.request} request): {why}"
        service = service_of_user(e.user)
        actor = (f"provider:{provider}" if provider else f"service:{service}" if service
                 else f"kafka:{e.principal}")
        action = "kafka.acl-denied"
    # The refusal's own id: the same broker line shipped twice is one audit entry.
    return AuditRecorded(audit_id=e.refusal_id, recorded_at=e.observed_at, service="kafka-broker",
                         channel="kafka", actor=actor, provider_id=provider, action=action,
                         outcome="refused", reason=reason[:2000], details=details)
