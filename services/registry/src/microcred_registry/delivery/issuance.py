"""The registry's one client for holder-bound copies (ADR 31): issuance's internal
`POST /internal/v1/credentials/{id}/bound-copies`, authenticated by the service token. Both
ways a wallet takes a credential use it — the VC-API exchange (this context) and OpenID4VCI
(microcred_registry.oid4vci) — and each says a failure in its own protocol's words."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr


class Unavailable(Exception):
    """No copy now: not configured (`configured` False), or issuance unreachable or failing.
    The wallet may try again later."""

    def __init__(self, detail: str, *, configured: bool = True) -> None:
        super().__init__(detail)
        self.configured = configured


class Refused(Exception):
    """Issuance will not copy this credential (no longer active, or not the one it issued);
    `status` is its answer (404, 409 or 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class Issuance:
    url: str | None
    token: SecretStr | None
    timeout: float = 15.0
    transport: httpx.AsyncBaseTransport | None = None  # tests

    async def bound_copy(self, credential_id: uuid.UUID, document: dict[str, Any],
                         holder: str) -> dict[str, Any]:
        """The credential, signed by its issuer as a new credential naming `holder`."""
        if not (self.url and self.token and self.token.get_secret_value()):
            raise Unavailable("this deployment has no issuance URL or service token "
                              "(MICROCRED_ISSUANCE_URL, MICROCRED_SERVICE_TOKEN) configured",
                              configured=False)
        try:
            async with httpx.AsyncClient(base_url=self.url.rstrip("/"), transport=self.transport,
                                         timeout=httpx.Timeout(self.timeout, connect=3.0)) as c:
                r = await c.post(f"/internal/v1/credentials/{credential_id}/bound-copies",
                                 json={"credential": document, "holder": holder},
                                 headers={"authorization":
                                          f"Bearer {self.token.get_secret_value()}"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"issuance unreachable: {type(exc).__name__}") from exc
        if r.status_code in (404, 409, 422):  # about the credential itself: say why
            detail = r.text[:300]
            if r.headers.get("content-type", "").startswith("application/problem+json"):
                detail = str(r.json().get("detail", detail))
            raise Refused(r.status_code, detail)
        if r.status_code != 201:
            raise Unavailable(f"issuance answered {r.status_code}")
        signed = r.json().get("verifiableCredential")
        if not isinstance(signed, dict):
            raise Unavailable("issuance answered without a credential")
        return signed
