from __future__ import annotations

import base64
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AliasChoices, Field, SecretStr, field_validator

from microcred_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "registry"
    own_database_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_DATABASE_URL"))
    http_port: int = Field(8103, validation_alias=AliasChoices("MICROCRED_REGISTRY_HTTP_PORT"))
    # TLS served by the process itself (the local stack: did:web needs https, ADR 22);
    # unset when a proxy or ingress terminates TLS in front of it.
    tls_certfile: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_TLS_CERTFILE"))
    tls_keyfile: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_REGISTRY_TLS_KEYFILE"))
    # Operators may list any learner's credentials; learners sign in for their own.
    operator_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OPERATOR_TOKEN"))
    # Learner sign-in: one-time link lifetime, session lifetime, requests per address and window.
    signin_ttl_seconds: int = Field(
        900, validation_alias=AliasChoices("MICROCRED_SIGNIN_TTL_SECONDS"))
    session_ttl_seconds: int = Field(
        8 * 3600, validation_alias=AliasChoices("MICROCRED_LEARNER_SESSION_TTL_SECONDS"))
    signin_rate_limit: int = Field(
        5, validation_alias=AliasChoices("MICROCRED_SIGNIN_RATE_LIMIT"))
    signin_rate_window_seconds: int = Field(
        900, validation_alias=AliasChoices("MICROCRED_SIGNIN_RATE_WINDOW_SECONDS"))
    # Holder-bound copies (the wallet exchange and OpenID4VCI, ADR 31) are signed by
    # issuance: where it listens, and the service token the registry presents there.
    # Unset token: no wallet delivery.
    issuance_url: str = Field(
        "http://127.0.0.1:8102", validation_alias=AliasChoices("MICROCRED_ISSUANCE_URL"))
    service_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_SERVICE_TOKEN"))
    # OpenID4VCI (ADR 28): how long an offer's pre-authorized code and an access token live.
    oid4vci_offer_ttl_seconds: int = Field(
        600, validation_alias=AliasChoices("MICROCRED_OID4VCI_OFFER_TTL_SECONDS"))
    # How long a wallet exchange opened from the learner's page stays open (ADR 27), and
    # the one in the issue mail (ADR 31: single use; a week to open one's mail).
    exchange_ttl_seconds: int = Field(
        900, validation_alias=AliasChoices("MICROCRED_EXCHANGE_TTL_SECONDS"))
    mail_exchange_ttl_seconds: int = Field(
        7 * 86400, validation_alias=AliasChoices("MICROCRED_MAIL_EXCHANGE_TTL_SECONDS"))
    # The Open Badges 3.0 API (ADR 30): how long an authorization code, an access token and
    # a refresh token live, and what the service description document names.
    ob_code_ttl_seconds: int = Field(
        120, validation_alias=AliasChoices("MICROCRED_OB_CODE_TTL_SECONDS"))
    ob_access_ttl_seconds: int = Field(
        3600, validation_alias=AliasChoices("MICROCRED_OB_ACCESS_TTL_SECONDS"))
    ob_refresh_ttl_seconds: int = Field(
        180 * 86400, validation_alias=AliasChoices("MICROCRED_OB_REFRESH_TTL_SECONDS"))
    ob_service_name: str = Field(
        "microcred", validation_alias=AliasChoices("MICROCRED_OB_SERVICE_NAME"))
    ob_terms_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OB_TERMS_URL"))
    ob_privacy_url: str | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_OB_PRIVACY_URL"))
    # The trust list's OpenID Federation statements are signed with this Ed25519 key
    # (base64url of its 32-byte seed; ADR 26). Unset: only the DCC registry JSON is served.
    trust_signing_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MICROCRED_TRUST_SIGNING_KEY"))

    @field_validator("trust_signing_key")
    @classmethod
    def _trust_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(_seed(value)) != 32:
            raise ValueError("MICROCRED_TRUST_SIGNING_KEY must be base64url of 32 bytes")
        return value

    def trust_key(self) -> Ed25519PrivateKey | None:
        if self.trust_signing_key is None:
            return None
        return Ed25519PrivateKey.from_private_bytes(_seed(self.trust_signing_key))


def _seed(value: SecretStr) -> bytes:
    raw = value.get_secret_value().strip()
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError as exc:
        raise ValueError("MICROCRED_TRUST_SIGNING_KEY must be base64url") from exc
