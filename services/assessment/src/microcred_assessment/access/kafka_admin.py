"""Kafka principals for providers that publish directly: SCRAM-SHA-512 users, per-provider
result topics and the ACLs that bind one to the other.

Kafka does not tell a consumer who produced a record, so attribution comes from the topic:
provider `p` gets its own topic `microcred.assessment.results.p.v1` (topics.provider_results)
and an ACL letting only its principal write there. assessment subscribes by pattern and
takes the provider from the topic name (ADR 11).

SCRAM credentials go through microcred_shared.kafka_scram (AlterUserScramCredentials,
salted on our side: the broker never receives the password, and we never store it).

Under SASL (ADR 19) the admin connection is assessment's own principal `svc-assessment`,
whose ACLs allow exactly this: CREATE on the provider topics' prefix, ALTER on the cluster.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from microcred_assessment.access.domain import Principal, username_for
from microcred_shared import kafka_scram
from microcred_shared.contract import topics
from microcred_shared.kafka_scram import ScramError

TOPIC, GROUP = 2, 3  # ResourceType
LITERAL, PREFIXED, MATCH_ANY = 3, 4, 1  # PatternType
READ, WRITE, DESCRIBE, IDEMPOTENT_WRITE, ANY = 3, 4, 8, 12, 1  # AclOperation
ALLOW, PERMISSION_ANY = 3, 1
TOPIC_ALREADY_EXISTS = 36


class KafkaAdminError(RuntimeError):
    pass


class KafkaAdmin:
    """Broker-side changes for provider principals, over the service's own connection
    (client_options: Settings.kafka_client_options(); none on the local open listener)."""

    def __init__(self, bootstrap: str, **client_options: Any) -> None:
        self._bootstrap, self._options = bootstrap, client_options
        # Its own principal, when it has one: it writes the dead letters of provider topics.
        user = client_options.get("sasl_plain_username")
        self._own_principal = f"User:{user}" if user else None

    async def _client(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._options)
        await admin.start()
        return admin

    async def set_password(self, provider_id: str) -> Principal:
        """Create the user or give it a new password (the old one stops authenticating)."""
        user, password = username_for(provider_id), secrets.token_urlsafe(32)
        await self._scram([], [kafka_scram.upsertion(user, password)])
        return Principal(user, password, topics.provider_results(provider_id))

    async def delete_user(self, provider_id: str) -> None:
        await self._scram([kafka_scram.deletion(username_for(provider_id))], [],
                          missing_ok=True)

    async def _scram(self, deletions: list[tuple[Any, ...]], upsertions: list[tuple[Any, ...]],
                     *, missing_ok: bool = False) -> None:
        admin = await self._client()
        try:
            await kafka_scram.alter(admin, deletions, upsertions, missing_ok=missing_ok)
        except ScramError as exc:
            raise KafkaAdminError(str(exc)) from exc
        finally:
            await admin.close()

    async def ensure_topics(self, provider_id: str) -> None:
        name = topics.provider_results(provider_id)
        admin = await self._client()
        try:
            response = await admin.create_topics(
                [NewTopic(n, num_partitions=topics.PARTITIONS, replication_factor=1)
                 for n in (name, topics.dlq(name))])
        finally:
            await admin.close()
        for item in response.topic_errors:
            if item[1] not in (0, TOPIC_ALREADY_EXISTS):
                raise KafkaAdminError(f"creating topic {item[0]} failed: error {item[1]}")

    async def grant(self, provider_id: str) -> None:
        """WRITE on its own results topic; READ on its own dead letters (so it learns why a
        record was refused) with consumer groups named after it."""
        principal, name = f"User:{username_for(provider_id)}", topics.provider_results(provider_id)
        grants = [(TOPIC, name, LITERAL, op) for op in (WRITE, DESCRIBE)]
        grants += [(TOPIC, topics.dlq(name), LITERAL, op) for op in (READ, DESCRIBE)]
        grants.append((GROUP, username_for(provider_id), PREFIXED, READ))
        mine = [(self._own_principal, TOPIC, topics.dlq(name), LITERAL, WRITE)
                ] if self._own_principal else []  # assessment dead-letters its records
        admin = await self._client()
        try:
            for who, resource, rname, pattern, op in [
                    *((principal, *g) for g in grants), *mine]:
                response = await admin._send_request(CreateAclsRequest(
                    resource, rname, pattern, who, "*", op, ALLOW))
                for code, message in response.creation_responses:
                    if code:
                        raise KafkaAdminError(f"ACL {op} on {rname} failed: {code} {message}")
        finally:
            await admin.close()

    async def revoke_grants(self, provider_id: str) -> None:
        """Drop every ACL of the principal: ACLs are checked per request, so this also stops
        connections that authenticated before the password was deleted."""
        admin = await self._client()
        try:
            response = await admin._send_request(DeleteAclsRequest(
                ANY, None, MATCH_ANY, f"User:{username_for(provider_id)}", None, ANY,
                PERMISSION_ANY))
        finally:
            await admin.close()
        for result in response.filter_responses:
            if result[0]:
                raise KafkaAdminError(f"deleting ACLs failed: {result[0]} {result[1]}")
