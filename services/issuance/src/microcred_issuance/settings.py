from __future__ import annotations

import base64
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from microcred_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "issuance"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_ISSUANCE_DATABASE_URL"))
    http_port: int = Field(8102, validation_alias=AliasChoices("MICROCRED_ISSUANCE_HTTP_PORT"))
    key_encryption_key: SecretStr = Field(
        validation_alias=AliasChoices("MICROCRED_KEY_ENCRYPTION_KEY"))
    cryptosuite: Literal["eddsa-rdfc-2022", "eddsa-jcs-2022"] = Field(
        "eddsa-rdfc-2022", validation_alias=AliasChoices("MICROCRED_CRYPTOSUITE"))

    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
    # The token the registry presents on issuance's internal endpoint for holder-bound
    # copies (the wallet exchange and OpenID4VCI alike, ADR 31). Unset: it admits nobody.
    service_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_SERVICE_TOKEN"))

    @field_validator("key_encryption_key")
    @classmethod
    def _kek(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        try:
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError as exc:
            raise ValueError("MICROCRED_KEY_ENCRYPTION_KEY must be base64url") from exc
        if len(key) != 32:
            raise ValueError("MICROCRED_KEY_ENCRYPTION_KEY must decode to 32 bytes")
        return value

    @property
    def kek_bytes(self) -> bytes:
        raw = self.key_encryption_key.get_secret_value()
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
