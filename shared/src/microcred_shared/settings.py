"""Typed settings shared by every service. Only settings modules read the environment."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]


def database_url_for(server_url: str, database: str) -> str:
    """Swap the database name of a server URL and pick the asyncpg driver."""
    parts = urlsplit(server_url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set `service` and their default port."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)
    service: ClassVar[str] = "service"
    default_port: ClassVar[int] = 8100

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    server_database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL"))
    own_database_url: str | None = None
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("MICROCRED_HTTP_HOST"))
    http_port: int = 0
    public_base_url: str = Field(
        "http://127.0.0.1:8103", validation_alias=AliasChoices("MICROCRED_PUBLIC_BASE_URL")
    )
    otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    environment: str = Field("development", validation_alias=AliasChoices("MICROCRED_ENV"))
    batch_size: int = Field(500, validation_alias=AliasChoices("MICROCRED_BATCH_SIZE"))

    @model_validator(mode="before")
    @classmethod
    def _service_scoped(cls, data: dict) -> dict:
        import os

        prefix = f"MICROCRED_{cls.service.upper()}_"
        data = dict(data)
        data.setdefault("own_database_url", os.environ.get(prefix + "DATABASE_URL"))
        data.setdefault("http_port", int(os.environ.get(prefix + "HTTP_PORT", cls.default_port)))
        return data

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
