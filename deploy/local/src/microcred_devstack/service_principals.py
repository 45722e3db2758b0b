"""The services' own Kafka principals (ADR 19) on their own SCRAM listener (ADR 21):
`svc-<service>` SCRAM users with random passwords kept per state dir (0600 files, like the
other local secrets), granted exactly the ACLs that microcred_shared.kafka_acls derives from
the topic map.

Set up through the open PLAINTEXT listener (its ANONYMOUS principal is a super user there),
in one admin connection; idempotent, so every `start_infra` repeats it safely.
"""

from __future__ import annotations

import asyncio
import secrets
import time
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


async def login_error(services_bootstrap: str, state_dir: Path, service: str) -> str | None:
    """None when the service's principal logs in on its listener, else why not."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=services_bootstrap, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=service_user(service),
        sasl_plain_password=service_password(state_dir, service), request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.describe_cluster()
        return None
    except Exception as err:  # refused login, broker still loading: retried by the caller
        return repr(err)
    finally:
        await admin.close()


async def wait_service_logins(services_bootstrap: str, state_dir: Path,
                              timeout: float = 60.0) -> None:  # noqa: ASYNC109
    """Wait until every service principal logs in on the services' listener.

    A broker serves its listeners before it has replayed the SCRAM credentials from the
    metadata log, so a login right after a (re)start can be refused; ready means the
    services can log in, not only that the port answers."""
    deadline = time.monotonic() + timeout
    waiting = {s: "not tried" for s in SERVICES}
    while waiting and time.monotonic() < deadline:
        for service in list(waiting):
            why = await login_error(services_bootstrap, state_dir, service)
            if why is None:
                del waiting[service]
            else:
                waiting[service] = why
        if waiting:
            await asyncio.sleep(0.3)
    if waiting:
        raise RuntimeError(f"service principals cannot log in to Kafka after {timeout:.0f}s: "
                           + "; ".join(f"{service_user(s)}: {w}" for s, w in waiting.items()))


def wait_service_logins_sync(services_bootstrap: str, state_dir: Path,
                             timeout: float = 60.0) -> None:
    run_sync(wait_service_logins(services_bootstrap, state_dir, timeout))
