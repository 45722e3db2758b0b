from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr

from microcred_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "registry"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_DATABASE_URL"))
    http_port: int = Field(8103, validation_alias=AliasChoices("MICROCRED_REGISTRY_HTTP_PORT"))
    # Until learner sign-in exists, listing a learner's credentials is for operators only.
    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
