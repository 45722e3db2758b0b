"""Typed settings shared by every service. Only settings modules read the environment."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]


def database_url_for(server_url: str, database: str) -> str:
    """Swap the database name of a server URL and pick the asyncpg driver."""
    parts = urlsplit(server_url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set `service` and declare their own
    `own_database_url` and `http_port` with the service-scoped names
    (MICROCRED_<SERVICE>_DATABASE_URL, MICROCRED_<SERVICE>_HTTP_PORT).

    Every field has an explicit environment name: without one, pydantic-settings would also
    read the bare field name (a stray HTTP_PORT would win)."""

    model_config = SettingsConfigDict(extra="ignore")
    service: ClassVar[str] = "service"

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    server_database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL"))
    own_database_url: str | None = Field(None, validation_alias=AliasChoices(
        "MICROCRED_SERVICE_DATABASE_URL"))
    http_port: int = Field(8100, validation_alias=AliasChoices("MICROCRED_SERVICE_HTTP_PORT"))
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("MICROCRED_HTTP_HOST"))
    public_base_url: str = Field(
        "http://127.0.0.1:8103", validation_alias=AliasChoices("MICROCRED_PUBLIC_BASE_URL")
    )
    otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    batch_size: int = Field(500, validation_alias=AliasChoices("MICROCRED_BATCH_SIZE"))
    # "text" for people, "json" (one object per line, with trace ids) for a log pipeline.
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=AliasChoices("MICROCRED_LOG_FORMAT"))

    @property
    def database_url(self) -> str:
        if self.own_database_url:
            return database_url_for(self.own_database_url, urlsplit(
                self.own_database_url).path.lstrip("/") or self.database_name)
        if not self.server_database_url:
            raise RuntimeError(
                "DATABASE_URL is not set: point it at a PostgreSQL server "
                "(`make up` starts the embedded one and sets it)"
            )
        return database_url_for(self.server_database_url, self.database_name)

    @property
    def database_name(self) -> str:
        return f"microcred_{self.service}"

    @property
    def consumer_group(self) -> str:
        return f"microcred-{self.service}"
