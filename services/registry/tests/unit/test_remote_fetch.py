"""The registry dereferences other people's URLs only when they lead to public addresses."""

from __future__ import annotations

import pytest

# Pure modules only: the table models share SQLModel's metadata with other services' models.
from microcred_registry.verification.fetch import remote_document
from microcred_shared import netguard


@pytest.mark.parametrize("answer", ["10.0.0.5", "127.0.0.1", "::ffff:127.0.0.1",
                                    "169.254.169.254"])
async def test_a_credential_url_whose_name_resolves_inside_is_not_fetched(
        monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return [answer]

    monkeypatch.setattr(netguard, "system_resolve", resolve)
    with pytest.raises(netguard.BlockedDestination):
        await remote_document("https://issuer.attacker.example/issuers/x")


async def test_plain_http_and_address_literals_inside_are_refused_without_a_lookup() -> None:
    with pytest.raises(ValueError, match="only https"):
        await remote_document("http://issuer.example.org/issuers/x")
    with pytest.raises(netguard.BlockedDestination):
        await remote_document("https://[::ffff:10.0.0.1]/issuers/x")
