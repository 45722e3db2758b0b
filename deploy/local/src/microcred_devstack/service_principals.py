"""The services' own Kafka principals (ADR 19) on their own SCRAM listener (ADR 21):
`svc-<service>` SCRAM users with random passwords kept per state dir (0600 files, like the
other local secrets), granted exactly the ACLs that microcred_shared.kafka_acls derives from
the topic map.

Set up through the open PLAINTEXT listener (its ANONYMOUS principal is a super user there),
in one admin connection; idempotent, so every `start_infra` repeats it safely.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from ._sync import run_sync
from .config import SERVICES, _kept_secret


def service_user(service: str) -> str:
    return f"svc-{service}"


def service_password(state_dir: Path, service: str) -> str:
    return _kept_secret(state_dir, f"kafka-{service_user(service)}-password",
                        lambda: secrets.token_urlsafe(24))


def service_kafka_env(state_dir: Path, service: str, services_bootstrap: str) -> dict[str, str]:
    """The settings that put a service on the services' SCRAM listener as its own principal."""
    return {"KAFKA_BOOTSTRAP_SERVERS": services_bootstrap,
            "MICROCRED_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MICROCRED_KAFKA_SASL_USERNAME": service_user(service),
            "MICROCRED_KAFKA_SASL_PASSWORD": service_password(state_dir, service)}


async def ensure_service_principals(bootstrap: str, state_dir: Path) -> None:
    """Create (or reset to the kept password) each service's SCRAM user and grant its ACLs."""
    from microcred_shared import kafka_acls, kafka_scram  # the topic map lives there

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await kafka_scram.alter(admin, [], [
            kafka_scram.upsertion(service_user(s), service_password(state_dir, s))
            for s in SERVICES])
        for service in SERVICES:
            await kafka_acls.create_acls(admin, kafka_acls.service_principal(service),
                                         kafka_acls.service_acls(service))
    finally:
        await admin.close()


def ensure_service_principals_sync(bootstrap: str, state_dir: Path) -> None:
    run_sync(ensure_service_principals(bootstrap, state_dir))
