"""Settings of the learner mail, mixed into notify's Settings. Every field has its explicit
environment name (tests/contract holds compose and k8s against them)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MailSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    smtp_host: str = Field("127.0.0.1", validation_alias=AliasChoices("MICROCRED_SMTP_HOST"))
    smtp_port: int = Field(8025, validation_alias=AliasChoices("MICROCRED_SMTP_PORT"))
    smtp_from: str = Field("credentials@microcred.local",
                           validation_alias=AliasChoices("MICROCRED_SMTP_FROM"))
    # 16 (ADR 4, revised 2026-12-07): mail relays take many sessions at once (Postfix's own
    # client opens up to 20 to one destination by default); 4 held notify to ~430 mails/s.
    smtp_connections: int = Field(16, ge=1, validation_alias=AliasChoices(
        "MICROCRED_SMTP_CONNECTIONS"))
    max_attempts: int = Field(6, validation_alias=AliasChoices("MICROCRED_NOTIFY_MAX_ATTEMPTS"))
    # First retry after this many seconds, doubling each time (with jitter).
    retry_base_seconds: float = Field(
        5.0, validation_alias=AliasChoices("MICROCRED_NOTIFY_RETRY_BASE_SECONDS"))
