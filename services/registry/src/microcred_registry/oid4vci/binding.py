"""Asks issuance for a holder-bound copy of a stored credential (ADR 28): authenticated
HTTP with the registry's holder-binding token; issuance signs only what it issued."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr


class BindingUnavailable(Exception):
    """Issuance did not make the copy (down, refused, or not configured)."""


@dataclass(frozen=True)
class HolderBinding:
    issuance_url: str
    token: SecretStr | None
    transport: httpx.AsyncBaseTransport | None = None  # tests

    async def bind(self, credential: dict[str, Any], holder: str) -> dict[str, Any]:
        if self.token is None:
            raise BindingUnavailable("MICROCRED_HOLDER_BINDING_TOKEN is not set")
        try:
            async with httpx.AsyncClient(base_url=self.issuance_url.rstrip("/"),
                                         transport=self.transport,
                                         timeout=httpx.Timeout(15.0, connect=3.0)) as http:
                r = await http.post("/holder-bindings", json={
                    "credential": credential, "holder": holder}, headers={
                    "authorization": f"Bearer {self.token.get_secret_value()}"})
        except httpx.HTTPError as exc:
            raise BindingUnavailable(f"issuance unreachable: {exc}") from exc
        if r.status_code != 201:
            raise BindingUnavailable(f"issuance refused ({r.status_code}): {r.text[:300]}")
        signed = r.json().get("verifiableCredential")
        if not isinstance(signed, dict):
            raise BindingUnavailable("issuance answered without a credential")
        return signed
