"""The assessment process's runtime: the shared one plus what this service's start hook
builds, declared so routes and hooks are type-checked against it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from microcred_assessment.settings import Settings
from microcred_shared.auth import KeyVerifier
from microcred_shared.projection import LiveCatalog
from microcred_shared.runtime import ServiceRuntime

if TYPE_CHECKING:  # the access context builds it; the runtime only carries it
    from microcred_assessment.access.kafka_admin import KafkaAdmin
    from microcred_assessment.results.ingest import IngestStore


class AssessmentRuntime(ServiceRuntime):
    settings: Settings
    # Set by main.build's start hook, before any route or subscriber runs.
    catalog: LiveCatalog
    key_verifier: KeyVerifier
    kafka_admin: KafkaAdmin
    ingest: IngestStore
