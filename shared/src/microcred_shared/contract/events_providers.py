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

from pydantic import Field

from microcred_shared.catalog import Definition, Provider
from microcred_shared.contract.events import Event


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


class BrokerRefusalObserved(Event):
    """The Kafka broker refused a client: a failed SASL login or an ACL denial, as its audit
    plugin (deploy/kafka-audit) recorded it, shipped from the broker's log. `refusal_id` is
    the plugin's own id, so a record shipped twice is one refusal (ADR 13)."""

    ce_type: ClassVar[str] = "ca.microcred.kafka.refusal.observed.v1"
    refusal_id: uuid.UUID
    observed_at: datetime
    kind: Literal["authentication-failed", "acl-denied"]
    username: str | None = Field(default=None, max_length=300)  # the SCRAM user tried
    mechanism: str | None = Field(default=None, max_length=50)
    principal: str | None = Field(default=None, max_length=300)  # the authenticated one
    host: str | None = Field(default=None, max_length=100)
    listener: str | None = Field(default=None, max_length=100)
    request: str | None = Field(default=None, max_length=100)
    operation: str | None = Field(default=None, max_length=50)
    resource_type: str | None = Field(default=None, max_length=50)
    resource_name: str | None = Field(default=None, max_length=300)
    pattern_type: str | None = Field(default=None, max_length=50)
    reason: str | None = Field(default=None, max_length=1000)

    @property
    def user(self) -> str | None:
        """The SCRAM user name concerned, whichever kind of refusal this is."""
        if self.username is not None:
            return self.username
        return self.principal.removeprefix("User:") if self.principal else None

    def key(self) -> bytes:
        return (self.user or "-").encode()
