"""Kafka's AlterUserScramCredentials (API 51), which aiokafka 0.14 lacks. The request is
small, so it is defined here; assessment (provider principals, ADR 11) and the devstack
(service principals, ADR 19) both use it.

The salted password is computed on our side (RFC 5802 `Hi`, as Kafka's ScramFormatter
does): the broker never receives the password.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient
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

SCRAM_SHA_512 = 2  # Kafka's ScramMechanism code
ITERATIONS = 8192
RESOURCE_NOT_FOUND = 91


class ScramError(RuntimeError):
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


def upsertion(user: str, password: str) -> tuple[Any, ...]:
    salt = os.urandom(32)
    return (user, SCRAM_SHA_512, ITERATIONS, salt, salted_password(password, salt), {})


def deletion(user: str) -> tuple[Any, ...]:
    return (user, SCRAM_SHA_512, {})


async def alter(admin: AIOKafkaAdminClient, deletions: list[tuple[Any, ...]],
                upsertions: list[tuple[Any, ...]], *, missing_ok: bool = False) -> None:
    """One AlterUserScramCredentials request on a started admin client (needs ALTER on the
    cluster); raises ScramError for any user the broker refused."""
    response = await admin._send_request(  # no public API in aiokafka 0.14
        AlterUserScramCredentials(deletions, upsertions))
    for user, code, message, _ in response.results:
        if code and not (missing_ok and code == RESOURCE_NOT_FOUND):
            raise ScramError(f"SCRAM change for {user} failed: {code} {message}")
