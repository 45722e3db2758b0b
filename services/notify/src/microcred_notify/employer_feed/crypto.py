"""Standard Webhooks signatures and the at-rest encryption of endpoint secrets.

Signature: `v1,` + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")),
where the endpoint secret is `whsec_` + base64(key). The secret must stay usable for
signing, so it is stored AES-256-GCM encrypted under MICROCRED_NOTIFY_SECRET_KEY, bound to
its subscription id (a ciphertext moved to another row fails to decrypt)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook_id, timestamp, body),
            "content-type": "application/json"}


def webhook_id(event_id: uuid.UUID, subscription_id: uuid.UUID) -> str:
    """Stable per event per endpoint: the same on every retry and on an operator's replay."""
    return "msg_" + uuid.uuid5(subscription_id, str(event_id)).hex


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(subscription_id: uuid.UUID) -> bytes:
        return f"microcred-webhook-secret:{subscription_id}".encode()

    def seal(self, subscription_id: uuid.UUID, secret: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return self._aead.encrypt(nonce, secret.encode(), self._aad(subscription_id)), nonce

    def open(self, subscription_id: uuid.UUID, ciphertext: bytes, nonce: bytes) -> str:
        return self._aead.decrypt(nonce, ciphertext, self._aad(subscription_id)).decode()
