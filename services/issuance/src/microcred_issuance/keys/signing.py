"""The one place a proof is made: every credential and status list is signed here, with
the issuer's active key and the configured cryptosuite (a VC-API caller may pick another)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microcred_issuance.keys import domain
from microcred_issuance.keys.domain import SigningKey
from microcred_issuance.keys.keystore import KeyStore


@dataclass(frozen=True)
class Signer:
    keys: KeyStore
    base_url: str
    cryptosuite: str

    def credential(self, doc: dict[str, Any], key: SigningKey,
                   cryptosuite: str | None = None) -> dict[str, Any]:
        return domain.sign(doc, key, base_url=self.base_url,
                           cryptosuite=cryptosuite or self.cryptosuite)

    def status_list(self, doc: dict[str, Any], provider_id: str) -> dict[str, Any]:
        return self.credential(doc, self.keys.active(provider_id))
