"""Kafka principals for providers that publish directly: SCRAM-SHA-512 users, per-provider
result topics and the ACLs that bind one to the other.

Kafka does not tell a consumer who produced a record, so attribution comes from the topic:
provider `p` gets its own topic `microcred.assessment.results.p.v1` (topics.provider_results)
and an ACL letting only its principal write there. assessment subscribes by pattern and
takes the provider from the topic name (ADR 11).

aiokafka has no AlterUserScramCredentials call; the request is small, so it is defined here.
The salted password is computed on our side (RFC 5802 `Hi`, as Kafka's ScramFormatter
does): the broker never receives the password, and we never store it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from microcred_shared import topics

SCRAM_SHA_512 = 2  # Kafka's ScramMechanism code
ITERATIONS = 8192
TOPIC, GROUP = 2, 3  # ResourceType
LITERAL, PREFIXED, MATCH_ANY = 3, 4, 1  # PatternType
READ, WRITE, DESCRIBE, IDEMPOTENT_WRITE, ANY = 3, 4, 8, 12, 1  # AclOperation
ALLOW, PERMISSION_ANY = 3, 1
TOPIC_ALREADY_EXISTS = 36


class KafkaAdminError(RuntimeError):
    pass


class AlterUserScramCredentialsResponse_v0(Response):  # noqa: N801 (Kafka's naming)
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("user", CompactString("utf-8")), ("error_code", Int16),
                                 ("error_message", CompactString("utf-8")),
                                 ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # noqa: N801
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8),
                                   ("tags", TaggedFields))),
        ("upsertions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8),
                                    ("iterations", Int32), ("salt", CompactBytes),
                                    ("salted_password", CompactBytes), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


_ScramStruct: TypeAlias = AlterUserScramCredentialsRequest_v0


class AlterUserScramCredentials(Request[_ScramStruct]):
    API_KEY = 51

    def __init__(self, deletions: list[tuple[Any, ...]], upsertions: list[tuple[Any, ...]],
                 ) -> None:
        self._deletions, self._upsertions = deletions, upsertions

    def build(self, request_struct_class: type[_ScramStruct]) -> _ScramStruct:
        return request_struct_class(self._deletions, self._upsertions, {})


def salted_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


@dataclass(frozen=True)
class Principal:
    username: str
    password: str
    topic: str


def username_for(provider_id: str) -> str:
    return f"provider-{provider_id}"


class KafkaAdmin:
    """Broker-side changes for provider principals, over the service's own admin connection
    (a super user on the internal listener)."""

    def __init__(self, bootstrap: str, **client_options: Any) -> None:
        self._bootstrap, self._options = bootstrap, client_options

    async def _client(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._options)
        await admin.start()
        return admin

    async def set_password(self, provider_id: str) -> Principal:
        """Create the user or give it a new password (the old one stops authenticating)."""
        user, password, salt = username_for(provider_id), secrets.token_urlsafe(32), os.urandom(32)
        await self._scram([], [(user, SCRAM_SHA_512, ITERATIONS, salt,
                                salted_password(password, salt), {})])
        return Principal(user, password, topics.provider_results(provider_id))

    async def delete_user(self, provider_id: str) -> None:
        await self._scram([(username_for(provider_id), SCRAM_SHA_512, {})], [], missing_ok=True)

    async def _scram(self, deletions: list[tuple[Any, ...]], upsertions: list[tuple[Any, ...]],
                     *, missing_ok: bool = False) -> None:
        admin = await self._client()
        try:
            response = await admin._send_request(  # no public API in aiokafka 0.14
                AlterUserScramCredentials(deletions, upsertions))
        finally:
            await admin.close()
        for user, code, message, _ in response.results:
            if code and not (missing_ok and code == 91):  # 91: RESOURCE_NOT_FOUND
                raise KafkaAdminError(f"SCRAM change for {user} failed: {code} {message}")

    async def ensure_topics(self, provider_id: str) -> None:
        name = topics.provider_results(provider_id)
        admin = await self._client()
        try:
            response = await admin.create_topics(
                [NewTopic(n, num_partitions=4, replication_factor=1)
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
        admin = await self._client()
        try:
            for resource, rname, pattern, op in grants:
                response = await admin._send_request(CreateAclsRequest(
                    resource, rname, pattern, principal, "*", op, ALLOW))
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
