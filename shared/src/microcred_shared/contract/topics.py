"""Kafka topic names, defined once for every service and for the local tooling."""

from __future__ import annotations

from dataclasses import dataclass

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
EMPLOYER_API_KEYS = "microcred.employers.api-keys.v1"  # compacted: key digests, by key id
# Providers and their credential definitions (compacted: the latest of each, by id).
PROVIDERS = "microcred.providers.v1"
DEFINITIONS = "microcred.definitions.v1"
AUDIT = "microcred.audit.v1"
# Refusals inside the broker (failed SASL logins, ACL denials), shipped from its audit log.
KAFKA_REFUSALS = "microcred.kafka.refusals.v1"

# One results topic per provider with a Kafka principal: only that principal may write it,
# so the topic name tells assessment who sent a record (ADR 11).
PROVIDER_RESULTS_PATTERN = r"^microcred\.assessment\.results\.([a-z0-9][a-z0-9-]*)\.v1$"
PROVIDER_RESULTS_PREFIX = "microcred.assessment.results."

DLQ_SUFFIX = ".dlq"
# Partitions per topic, wherever the stack creates them (devstack, compose, Kubernetes, a
# provider's topic): up to 8 consumers of a group share a topic's work (ADR 2).
PARTITIONS = 8

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
              EMPLOYERS, EMPLOYER_API_KEYS)


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


@dataclass(frozen=True)
class TopicAccess:
    """What one service does on Kafka. Its principal's ACLs are derived from this and
    nothing else (microcred_shared.kafka_acls, ADR 19); tests/contract checks it against the
    services' subscriptions and docs/architecture.md."""

    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    # Pattern subscriptions: every topic under these name prefixes is consumed.
    consumes_prefixed: tuple[str, ...] = ()
    # Onboarding (ADR 11): creates these topics, sets SCRAM credentials, grants ACLs.
    creates_prefixed: tuple[str, ...] = ()
    manages_principals: bool = False


SERVICE_TOPICS: dict[str, TopicAccess] = {
    "assessment": TopicAccess(
        consumes=(RESULTS, AUDIT, KAFKA_REFUSALS),
        consumes_prefixed=(PROVIDER_RESULTS_PREFIX,),
        # KAFKA_REFUSALS: the broker-audit shipper inside assessment. Not RESULTS: HTTP
        # ingest decides at the door (ADR 40) and publishes decisions.
        produces=(DECISIONS, PROVIDERS, DEFINITIONS, PROVIDER_API_KEYS, AUDIT,
                  KAFKA_REFUSALS),
        creates_prefixed=(PROVIDER_RESULTS_PREFIX,),
        manages_principals=True,
    ),
    "issuance": TopicAccess(
        consumes=(PROVIDERS, DEFINITIONS, DECISIONS, PROVIDER_API_KEYS),
        produces=(CREDENTIALS_ISSUED, CREDENTIAL_STATUS, ISSUER_KEYS, STATUS_LISTS, AUDIT),
    ),
    "registry": TopicAccess(
        # PROVIDERS: the trust list of providers in good standing (ADR 26).
        consumes=(CREDENTIALS_ISSUED, ISSUER_KEYS, STATUS_LISTS, CREDENTIAL_STATUS, EMPLOYERS,
                  PROVIDER_API_KEYS, EMPLOYER_API_KEYS, PROVIDERS),
        produces=(CREDENTIALS_REGISTERED, CREDENTIAL_VISIBILITY, LEARNER_SIGNIN),
    ),
    "notify": TopicAccess(
        consumes=(CREDENTIALS_REGISTERED, LEARNER_SIGNIN, CREDENTIAL_STATUS, CREDENTIALS_ISSUED,
                  CREDENTIAL_VISIBILITY),
        # Its own dead letters of failed deliveries go to NOTIFICATIONS' .dlq.
        produces=(NOTIFICATIONS, dlq(NOTIFICATIONS), EMPLOYERS, EMPLOYER_API_KEYS),
    ),
}


# Each service logs in to Kafka as its own principal, named after it (ADR 19).
def service_user(service: str) -> str:
    return f"svc-{service}"


def service_principal(service: str) -> str:
    return f"User:{service_user(service)}"


def service_of_user(user: str | None) -> str | None:
    """`svc-issuance` -> `issuance`; None for any other user name."""
    if user and user.startswith("svc-") and user[4:] in SERVICE_TOPICS:
        return user[4:]
    return None
