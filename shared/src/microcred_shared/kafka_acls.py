"""The Kafka ACLs of each service's own principal `svc-<service>`, derived from the one map
of who produces and consumes what (topics.SERVICE_TOPICS, ADR 19):

- READ on each consumed topic (pattern subscriptions: PREFIXED READ), and WRITE on its
  `.dlq` (dead letters);
- WRITE on each produced topic (Kafka >= 3 lets WRITE on a topic init an idempotent
  producer, so no IDEMPOTENT_WRITE on the cluster);
- READ and DESCRIBE on the consumer groups `microcred-<service>.` (PREFIXED);
- onboarding (assessment): CREATE on the provider topics' prefix and ALTER on the cluster
  (AlterUserScramCredentials, CreateAcls and DeleteAcls all need it). A per-provider
  `.dlq` WRITE for assessment is granted when that provider is onboarded (kafka_admin).

`python -m microcred_shared.kafka_acls [SERVICE ...]` prints them as `kafka-acls.sh`
arguments, for operators setting up a production cluster.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from microcred_shared.contract import topics
from microcred_shared.contract.topics import service_principal

CLUSTER_NAME = "kafka-cluster"
ALLOW, DENY = 3, 2  # AclPermissionType


class Resource(enum.IntEnum):  # Kafka's ResourceType codes
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Operation(enum.IntEnum):  # Kafka's AclOperation codes
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


class Pattern(enum.IntEnum):  # Kafka's PatternType codes
    LITERAL = 3
    PREFIXED = 4


@dataclass(frozen=True, order=True)
class Acl:
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def kafka_acls_args(self, principal: str) -> str:
        where = {Resource.TOPIC: f"--topic {self.name}", Resource.GROUP: f"--group {self.name}",
                 Resource.CLUSTER: "--cluster"}[self.resource]
        return (f"--add --allow-principal {principal} --operation {self.operation.name.title()}"
                f" {where} --resource-pattern-type {self.pattern.name.lower()}")


def service_acls(service: str) -> list[Acl]:
    access = topics.SERVICE_TOPICS[service]
    lit, pre = Pattern.LITERAL, Pattern.PREFIXED
    acls = {Acl(Resource.TOPIC, t, lit, Operation.READ) for t in access.consumes}
    acls |= {Acl(Resource.TOPIC, topics.dlq(t), lit, Operation.WRITE) for t in access.consumes}
    acls |= {Acl(Resource.TOPIC, p, pre, Operation.READ) for p in access.consumes_prefixed}
    acls |= {Acl(Resource.TOPIC, t, lit, Operation.WRITE) for t in access.produces}
    acls |= {Acl(Resource.GROUP, f"microcred-{service}.", pre, op)
             for op in (Operation.READ, Operation.DESCRIBE)}
    acls |= {Acl(Resource.TOPIC, p, pre, Operation.CREATE) for p in access.creates_prefixed}
    if access.manages_principals:
        acls.add(Acl(Resource.CLUSTER, CLUSTER_NAME, lit, Operation.ALTER))
    return sorted(acls)


async def create_acls(admin: AIOKafkaAdminClient, principal: str, acls: list[Acl], *,
                      allow: bool = True) -> None:
    """Grant (or deny) `acls` to `principal` on a started admin client (idempotent: Kafka
    keeps one copy of an ACL granted twice)."""
    for acl in acls:
        response = await admin._send_request(CreateAclsRequest(  # no public API in aiokafka
            int(acl.resource), acl.name, int(acl.pattern), principal, "*", int(acl.operation),
            ALLOW if allow else DENY))
        for code, message in response.creation_responses:
            if code:
                raise RuntimeError(f"ACL {principal} {acl}: {code} {message}")


def main(argv: list[str]) -> None:
    for service in argv or list(topics.SERVICE_TOPICS):
        for acl in service_acls(service):
            print(acl.kafka_acls_args(service_principal(service)))


if __name__ == "__main__":
    main(sys.argv[1:])
