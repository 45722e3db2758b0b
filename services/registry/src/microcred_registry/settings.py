from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr

from microcred_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "registry"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_DATABASE_URL"))
    http_port: int = Field(8103, validation_alias=AliasChoices("MICROCRED_REGISTRY_HTTP_PORT"))
    # TLS served by the process itself (the local stack: did:web needs https, ADR 22);
    # unset when a proxy or ingress terminates TLS in front of it.
    tls_certfile: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_TLS_CERTFILE"))
    tls_keyfile: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_TLS_KEYFILE"))
    # Operators may list any learner's credentials; learners sign in for their own.
    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
    # Learner sign-in: one-time link lifetime, session lifetime, requests per address and window.
    signin_ttl_seconds: int = Field(
        900, validation_alias=AliasChoices("MICROCRED_SIGNIN_TTL_SECONDS"))
    session_ttl_seconds: int = Field(
        8 * 3600, validation_alias=AliasChoices("MICROCRED_LEARNER_SESSION_TTL_SECONDS"))
    signin_rate_limit: int = Field(
        5, validation_alias=AliasChoices("MICROCRED_SIGNIN_RATE_LIMIT"))
    signin_rate_window_seconds: int = Field(
        900, validation_alias=AliasChoices("MICROCRED_SIGNIN_RATE_WINDOW_SECONDS"))
