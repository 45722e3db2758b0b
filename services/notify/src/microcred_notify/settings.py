from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field

from microcred_notify.employer_settings import EmployerSettings
from microcred_shared.settings import ServiceSettings


class Settings(EmployerSettings, ServiceSettings):
    service: ClassVar[str] = "notify"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_NOTIFY_DATABASE_URL"))
    http_port: int = Field(8104, validation_alias=AliasChoices("MICROCRED_NOTIFY_HTTP_PORT"))
    smtp_host: str = Field("127.0.0.1", validation_alias=AliasChoices("MICROCRED_SMTP_HOST"))
    smtp_port: int = Field(8025, validation_alias=AliasChoices("MICROCRED_SMTP_PORT"))
    smtp_from: str = Field("credentials@microcred.local",
                           validation_alias=AliasChoices("MICROCRED_SMTP_FROM"))
    smtp_connections: int = Field(4, validation_alias=AliasChoices("MICROCRED_SMTP_CONNECTIONS"))
    max_attempts: int = Field(6, validation_alias=AliasChoices("MICROCRED_NOTIFY_MAX_ATTEMPTS"))
    # First retry after this many seconds, doubling each time (with jitter).
    retry_base_seconds: float = Field(
        5.0, validation_alias=AliasChoices("MICROCRED_NOTIFY_RETRY_BASE_SECONDS"))
