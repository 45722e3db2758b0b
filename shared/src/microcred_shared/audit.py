"""Audit records any service can emit: a refusal or an operator change becomes an
`AuditRecorded` event in the outbox (same transaction as the refusal's own writes); the
assessment service keeps the queryable log (`GET /v1/admin/audit`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from microcred_shared.contract import topics
from microcred_shared.contract.events_providers import AuditRecorded
from microcred_shared.outbox import Outgoing, event_record

Channel = Literal["http", "kafka", "admin"]


def audit_event(service: str, *, channel: Channel, actor: str, provider_id: str | None,
                action: str, reason: str, outcome: Literal["refused", "changed"] = "refused",
                details: dict[str, str] | None = None) -> AuditRecorded:
    return AuditRecorded(audit_id=uuid.uuid4(), recorded_at=datetime.now(UTC), service=service,
                         channel=channel, actor=actor, provider_id=provider_id, action=action,
                         outcome=outcome, reason=reason[:2000], details=details or {})


def audit_record(event: AuditRecorded, *, traceparent: str | None = None) -> Outgoing:
    return event_record(topics.AUDIT, event, f"/microcred/{event.service}",
                        traceparent=traceparent)
