from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr

from microcred_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "registry"
    default_port: ClassVar[int] = 8103
    # Until learner sign-in exists, listing a learner's credentials is for operators only.
    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
