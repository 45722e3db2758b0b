"""Events about providers, their credential definitions and the audit log (issue 4).

Providers and definitions travel as their full current state on compacted topics keyed by
id, so a new consumer rebuilds its projection from the topic alone; a definition carries
its version, and every version that ever issued a credential is kept by the projections
that need it (issuance). Audit records are facts about refusals and operator changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from microcred_shared.catalog import Definition, Provider
from microcred_shared.events import Event


class ProviderPublished(Event):
    """A provider was onboarded or changed (suspended, reactivated, renamed...)."""

    ce_type: ClassVar[str] = "ca.microcred.provider.published.v1"
    provider: Provider
    published_at: datetime

    def key(self) -> bytes:
        return self.provider.id.encode()


class DefinitionPublished(Event):
    """A credential definition version was published, or its status changed (retired)."""

    ce_type: ClassVar[str] = "ca.microcred.definition.published.v1"
    definition: Definition
    published_at: datetime

    def key(self) -> bytes:
        return self.definition.id.encode()


class AuditRecorded(Event):
    """Something was refused or changed. `actor` is who acted as authenticated (e.g.
    `provider:lakeshore-college`, `operator`, `anonymous`); `provider_id` is the provider
    concerned (the claimed one for a forged claim). Never carries a secret."""

    ce_type: ClassVar[str] = "ca.microcred.audit.recorded.v1"
    audit_id: uuid.UUID
    recorded_at: datetime
    service: str
    channel: Literal["http", "kafka", "admin"]
    actor: str
    provider_id: str | None = None
    action: str
    outcome: Literal["refused", "changed"]
    reason: str
    details: dict[str, str] = {}

    def key(self) -> bytes:
        return (self.provider_id or "-").encode()
