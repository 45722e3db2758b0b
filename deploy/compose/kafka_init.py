"""Docker Compose's one-shot `kafka-init`: the topics, the services' SCRAM users and their ACLs.

    python kafka_init.py

- every topic of microcred_shared.contract.topics (all_topics(), dead-letter siblings
  included; compacted_topics() with cleanup.policy=compact), 8 partitions each, as
  deploy/local does; existing topics are left alone;
- one SCRAM-SHA-512 user `svc-<service>` per service, with the password the service itself
  gets (MICROCRED_KAFKA_SVC_<SERVICE>_PASSWORD), set again on every run so that a changed
  password takes effect with `docker compose up`;
- the ACLs microcred_shared.kafka_acls derives for each (ADR 19; granting twice is a no-op).

It logs in as the broker's bootstrap super user (`admin`, created when the broker formats its
storage) with the usual client settings: MICROCRED_KAFKA_SECURITY_PROTOCOL=SASL_SSL,
MICROCRED_KAFKA_SASL_USERNAME/PASSWORD, MICROCRED_KAFKA_SSL_CAFILE. Idempotent; retries
while the broker starts. Runs in a service image (aiokafka and microcred_shared are there).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from microcred_shared import kafka_acls, kafka_scram
from microcred_shared.contract.topics import (
    PARTITIONS,
    SERVICE_TOPICS,
    all_topics,
    compacted_topics,
    service_principal,
    service_user,
)
from microcred_shared.settings import KafkaClientSettings

TOPIC_ALREADY_EXISTS = 36


def password_variable(service: str) -> str:
    return f"MICROCRED_KAFKA_SVC_{service.upper()}_PASSWORD"


def service_passwords(env: Mapping[str, str]) -> dict[str, str]:
    missing = [password_variable(s) for s in SERVICE_TOPICS if not env.get(password_variable(s))]
    if missing:
        sys.exit(f"kafka-init: set {', '.join(missing)} (see docker-compose.yml)")
    return {s: env[password_variable(s)] for s in SERVICE_TOPICS}


async def create_topics(admin: Any) -> list[str]:
    existing = set(await admin.list_topics())
    compacted = set(compacted_topics())
    wanted = [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1,
                       topic_configs={"cleanup.policy": "compact"} if name in compacted else {})
              for name in all_topics() if name not in existing]
    if wanted:
        response = await admin.create_topics(wanted)
        failed = [e for e in response.topic_errors if e[1] not in (0, TOPIC_ALREADY_EXISTS)]
        if failed:
            sys.exit(f"kafka-init: creating topics failed: {failed}")
    return [t.name for t in wanted]


async def init(admin: Any, passwords: Mapping[str, str]) -> None:
    """Everything, on a started admin client."""
    created = await create_topics(admin)
    print(f"kafka-init: created {created}; {len(all_topics())} topics in all", flush=True)
    await kafka_scram.alter(admin, [], [kafka_scram.upsertion(service_user(s), p)
                                        for s, p in passwords.items()])
    for service in passwords:
        acls = kafka_acls.service_acls(service)
        await kafka_acls.create_acls(admin, service_principal(service), acls)
        print(f"kafka-init: {service_user(service)} has its password and {len(acls)} ACLs",
              flush=True)


async def main(env: Mapping[str, str], attempts: int = 30) -> None:
    passwords = service_passwords(env)
    login = KafkaClientSettings().kafka_client_options()  # the admin's, from the environment
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], **login)
        try:
            await admin.start()
            return await init(admin, passwords)
        except (KafkaError, OSError) as exc:
            print(f"kafka-init: broker not ready ({exc!r}), retrying", flush=True)
            await asyncio.sleep(2)
        finally:
            await admin.close()
    sys.exit("kafka-init: broker not reachable")


if __name__ == "__main__":
    asyncio.run(main(os.environ))
