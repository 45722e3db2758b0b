from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from microcred_shared.settings import REPO_ROOT, ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "assessment"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_ASSESSMENT_DATABASE_URL"))
    http_port: int = Field(8101, validation_alias=AliasChoices("MICROCRED_ASSESSMENT_HTTP_PORT"))
    # Imported once, as operator actions, into an empty catalogue (first start).
    seed_file: str = Field(str(REPO_ROOT / "deploy" / "seed" / "providers.json"),
                           validation_alias=AliasChoices("MICROCRED_SEED_FILE"))
    # Results dated further in the future than this are refused (clock skew allowance).
    clock_skew_seconds: int = Field(
        300, validation_alias=AliasChoices("MICROCRED_CLOCK_SKEW_SECONDS"))
    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
    # The SASL listener providers are told to use (shown when a principal is created).
    kafka_provider_bootstrap: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_KAFKA_PROVIDER_BOOTSTRAP"))
    # The broker's audit log (deploy/kafka-audit), when it is on this machine: shipped to
    # the audit log from here. Elsewhere a sidecar ships it (`... ship-broker-audit LOG`).
    broker_audit_log: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_BROKER_AUDIT_LOG"))


class CliSettings(BaseSettings):
    """What `python -m microcred_assessment admin` needs to reach the admin API."""

    model_config = SettingsConfigDict(extra="ignore")
    url: str | None = Field(None, validation_alias=AliasChoices("MICROCRED_ASSESSMENT_URL"))
    http_port: int = Field(8101, validation_alias=AliasChoices("MICROCRED_ASSESSMENT_HTTP_PORT"))
    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))

    @property
    def base_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.http_port}").rstrip("/")
