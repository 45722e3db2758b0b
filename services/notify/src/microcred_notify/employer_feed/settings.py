"""Settings of the employer feed, mixed into notify's Settings. Every field has its explicit
environment name (tests/contract holds compose and k8s against them)."""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmployerSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
    # Encrypts webhook signing secrets at rest (AES-256-GCM): they must stay usable to sign,
    # so a one-way hash will not do.
    notify_secret_key: SecretStr = Field(
        validation_alias=AliasChoices("MICROCRED_NOTIFY_SECRET_KEY"))
    # Plain http is refused for webhook endpoints, except to 127.0.0.1 when this is set
    # (local stacks and tests).
    webhooks_allow_loopback_http: bool = Field(
        False, validation_alias=AliasChoices("MICROCRED_WEBHOOKS_ALLOW_LOOPBACK_HTTP"))
    # The retry schedule is 1, 60, 360, 1440, 3600, 7200, 7200 times this (5 s → 5 s, 5 min,
    # 30 min, 2 h, 5 h, 10 h, 10 h), each delay drawn with full jitter.
    webhook_retry_base_seconds: float = Field(
        5.0, validation_alias=AliasChoices("MICROCRED_WEBHOOK_RETRY_BASE_SECONDS"))
    webhook_max_attempts: int = Field(
        8, ge=1, validation_alias=AliasChoices("MICROCRED_WEBHOOK_MAX_ATTEMPTS"))
    # An endpoint is disabled after this many consecutive dead-lettered deliveries (or after
    # failing without a success for five days).
    webhook_disable_after_failures: int = Field(
        5, ge=1, validation_alias=AliasChoices("MICROCRED_WEBHOOK_DISABLE_AFTER_FAILURES"))
    # Also take each credential's document from credentials.issued, as before issue 12
    # wave 17: only while the registry still publishes visibility events without the
    # document (an upgrade from then: ADR 10 says in which order). Off, notify reads no
    # credentials.issued at all and a view holds a document only once an employer may see it.
    employer_feed_reads_issued: bool = Field(
        False, validation_alias=AliasChoices("MICROCRED_EMPLOYER_FEED_READS_ISSUED"))
    # Token bucket per employer, one for webhook sends and one for feed requests.
    employer_rate_per_second: float = Field(
        10.0, gt=0, validation_alias=AliasChoices("MICROCRED_EMPLOYER_RATE_PER_SECOND"))
    employer_rate_burst: int = Field(
        50, ge=1, validation_alias=AliasChoices("MICROCRED_EMPLOYER_RATE_BURST"))

    @field_validator("notify_secret_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if len(_decode(value.get_secret_value())) != 32:
            raise ValueError("MICROCRED_NOTIFY_SECRET_KEY must be base64url of 32 bytes")
        return value

    @property
    def secret_key_bytes(self) -> bytes:
        return _decode(self.notify_secret_key.get_secret_value())


def _decode(raw: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError as exc:
        raise ValueError("MICROCRED_NOTIFY_SECRET_KEY must be base64url") from exc
