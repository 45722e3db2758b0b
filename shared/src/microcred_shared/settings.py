"""Typed settings shared by every service. Only settings modules read the environment."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

REPO_ROOT = Path(__file__).resolve().parents[3]


def database_url_for(server_url: str, database: str) -> str:
    """Swap the database name of a server URL and pick the asyncpg driver."""
    parts = urlsplit(server_url)
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


SCRAM_MECHANISM = "SCRAM-SHA-512"


class KafkaClientSettings(BaseSettings):
    """How a process authenticates to Kafka (ADR 19). PLAINTEXT is the local default; with
    SASL_PLAINTEXT or SASL_SSL the process logs in with SCRAM-SHA-512 as its own principal
    (a service: `svc-<service>`, limited by ACLs to its topics). Every Kafka client a
    process builds takes its options from `kafka_client_options()` (FastStream's broker:
    `kafka_security()`, the same settings in FastStream's form)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=AliasChoices("MICROCRED_KAFKA_SECURITY_PROTOCOL"))
    kafka_sasl_username: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_KAFKA_SASL_PASSWORD"))
    # SASL_SSL: the CA bundle that signed the brokers' certificates (else the system's).
    kafka_ssl_cafile: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_KAFKA_SSL_CAFILE"))

    @model_validator(mode="after")
    def _credentials_with_sasl(self) -> KafkaClientSettings:
        if self.kafka_sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"MICROCRED_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "MICROCRED_KAFKA_SASL_USERNAME and MICROCRED_KAFKA_SASL_PASSWORD")
        return self

    @property
    def kafka_sasl(self) -> bool:
        return self.kafka_security_protocol != "PLAINTEXT"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol != "SASL_SSL":
            return None
        return ssl.create_default_context(cafile=self.kafka_ssl_cafile)

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin). The dict
        holds the password in clear: hand it to the client, never log it."""
        if not self.kafka_sasl:
            return {}
        assert self.kafka_sasl_username and self.kafka_sasl_password  # the validator
        return {"security_protocol": self.kafka_security_protocol,
                "ssl_context": self._ssl_context(), "sasl_mechanism": SCRAM_MECHANISM,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value()}

    def kafka_security(self) -> BaseSecurity | None:
        """The same, as FastStream's KafkaBroker(security=...) wants it."""
        if not self.kafka_sasl:
            return None
        from faststream.security import SASLScram512

        assert self.kafka_sasl_username and self.kafka_sasl_password
        return SASLScram512(self.kafka_sasl_username,
                            self.kafka_sasl_password.get_secret_value(),
                            ssl_context=self._ssl_context(),
                            use_ssl=self.kafka_security_protocol == "SASL_SSL")


class ServiceSettings(KafkaClientSettings):
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
    # How long a subscription's durable offsets may wait to be committed together (ADR 2):
    # what a crash makes the inbox drop again, against one commit request per batch.
    commit_interval_ms: int = Field(1000, ge=0, validation_alias=AliasChoices(
        "MICROCRED_COMMIT_INTERVAL_MS"))
    # "text" for people, "json" (one object per line, with trace ids) for a log pipeline.
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=AliasChoices("MICROCRED_LOG_FORMAT"))
    # A warning line when the event loop wakes this many milliseconds late or more (what
    # held it: its own work, the garbage collector, or no core); 0: none. Always measured
    # for GET /metrics (microcred_event_loop_lag_seconds, microcred_gc_pause_seconds).
    loop_stall_log_ms: int = Field(100, ge=0, validation_alias=AliasChoices(
        "MICROCRED_LOOP_STALL_LOG_MS"))

    # How the outbox relay's producer compresses the record batches it sends (ADR 2):
    # "none", "lz4" (a credential's events in about a quarter of the bytes on the broker's
    # disk and wire) or "zstd" (smaller still). Off by default: on one host it cut no CPU
    # per credential, and compressing batches of one record cost issuance CPU at 250-500/s.
    # Every consumer reads any codec; the broker keeps what it is sent.
    kafka_compression: Literal["none", "lz4", "zstd"] = Field(
        "none", validation_alias=AliasChoices("MICROCRED_KAFKA_COMPRESSION"))

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
