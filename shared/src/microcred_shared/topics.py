"""Kafka topic names, defined once for every service and for the local tooling."""

from __future__ import annotations

RESULTS = "microcred.assessment.results.v1"
DECISIONS = "microcred.assessment.decisions.v1"
CREDENTIALS_ISSUED = "microcred.credentials.issued.v1"
CREDENTIALS_REGISTERED = "microcred.credentials.registered.v1"
CREDENTIAL_STATUS = "microcred.credentials.status.v1"
NOTIFICATIONS = "microcred.notifications.v1"
# Compacted: the latest public key set per provider, projected by the registry.
ISSUER_KEYS = "microcred.issuers.keys.v1"
STATUS_LISTS = "microcred.status-lists.v1"
PROVIDER_API_KEYS = "microcred.providers.api-keys.v1"
# Learners and employers.
CREDENTIAL_VISIBILITY = "microcred.credentials.visibility.v1"
LEARNER_SIGNIN = "microcred.learners.signin.v1"
EMPLOYERS = "microcred.employers.v1"  # compacted: the employer directory, by id
# Providers and their credential definitions (compacted: the latest of each, by id).
PROVIDERS = "microcred.providers.v1"
DEFINITIONS = "microcred.definitions.v1"
AUDIT = "microcred.audit.v1"
# Refusals inside the broker (failed SASL logins, ACL denials), shipped from its audit log.
KAFKA_REFUSALS = "microcred.kafka.refusals.v1"

# One results topic per provider with a Kafka principal: only that principal may write it,
# so the topic name tells assessment who sent a record (ADR 11).
PROVIDER_RESULTS_PATTERN = r"^microcred\.assessment\.results\.([a-z0-9][a-z0-9-]*)\.v1$"

DLQ_SUFFIX = ".dlq"

_EVENT_TOPICS = (
    RESULTS,
    DECISIONS,
    CREDENTIALS_ISSUED,
    CREDENTIALS_REGISTERED,
    CREDENTIAL_STATUS,
    NOTIFICATIONS,
    CREDENTIAL_VISIBILITY,
    LEARNER_SIGNIN,
    AUDIT,
    KAFKA_REFUSALS,
)
_COMPACTED = (ISSUER_KEYS, STATUS_LISTS, PROVIDER_API_KEYS, PROVIDERS, DEFINITIONS,
              EMPLOYERS)


def dlq(topic: str) -> str:
    return topic + DLQ_SUFFIX


def provider_results(provider_id: str) -> str:
    return f"microcred.assessment.results.{provider_id}.v1"


def compacted_topics() -> list[str]:
    return list(_COMPACTED)


def all_topics() -> list[str]:
    """Every topic the backbone uses, with a dead-letter sibling for each (a consumer of a
    compacted topic dead-letters too)."""
    names = [*_EVENT_TOPICS, *_COMPACTED]
    return names + [dlq(name) for name in names]
