"""Holder-bound copies in-process (ADR 31): issuance signs, for the registry only (the
service token), a copy of a credential it issued, bound to the holder's DID: a new id, the
same status entries, recorded in its register of copies; anything it did not sign as it is
(tampered, unknown, revoked, suspended) is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from microcred_issuance.keys.domain import issuer_id
from microcred_shared.vc import proofs
from microcred_shared.vc.keys import multikey_decode

LAKESHORE = "lakeshore-college"
HOLDER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


async def signed(client: Any, world: Any) -> dict[str, Any]:
    r = await client.post("/credentials/issue", json={"credential": {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer_id(world.base_url, LAKESHORE), "type": ["Profile"],
                   "name": "Lakeshore College"},
        "credentialSubject": {"type": ["AchievementSubject"], "achievement": {
            "id": "https://lakeshore.example/a/1", "type": ["Achievement"],
            "name": "Lab safety", "description": "Safe lab work.",
            "criteria": {"narrative": "Induction"}}}}})
    assert r.status_code == 201, r.text
    return dict(r.json()["verifiableCredential"])


def bind_url(vc: dict[str, Any]) -> str:
    return f"/internal/v1/credentials/{vc['id'].removeprefix('urn:uuid:')}/bound-copies"


async def test_the_registry_gets_a_new_credential_bound_to_the_holder(
        client: Any, world: Any, service_auth: dict[str, str]) -> None:
    vc = await signed(client, world)
    r = await client.post(bind_url(vc), json={"credential": vc, "holder": HOLDER},
                          headers=service_auth)
    assert r.status_code == 201, r.text
    bound = r.json()["verifiableCredential"]
    assert bound["credentialSubject"]["id"] == HOLDER
    assert bound["credentialSubject"]["achievement"] == vc["credentialSubject"]["achievement"]
    # A new credential (its own id), revoked with the original (the same status entries).
    assert bound["id"].startswith("urn:uuid:") and bound["id"] != vc["id"]
    assert bound["credentialStatus"] == vc["credentialStatus"]
    async with world.engine.connect() as conn:
        row = (await conn.execute(sa.text(
            "SELECT credential_id, holder FROM bound_copies WHERE copy_id = :id"),
            {"id": uuid.UUID(bound["id"].removeprefix("urn:uuid:"))})).one()
    assert (f"urn:uuid:{row.credential_id}", row.holder) == (vc["id"], HOLDER)
    [listed] = await world.keys.public_keys(LAKESHORE)
    result = await proofs.verify_proof(
        bound, lambda _vm: multikey_decode(str(listed["public_multikey"])))
    assert result.ok, result.reason


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"},
                                     {"authorization": "Bearer mcp_provider-key"}])
async def test_only_the_registry_may_ask(client: Any, world: Any,
                                         headers: dict[str, str]) -> None:
    vc = await signed(client, world)
    r = await client.post(bind_url(vc), json={"credential": vc, "holder": HOLDER},
                          headers=headers)
    assert r.status_code == 401


async def test_a_tampered_unknown_or_inactive_credential_is_not_copied(
        client: Any, world: Any, service_auth: dict[str, str]) -> None:
    vc = await signed(client, world)
    tampered = {**vc, "name": "Something else"}
    r = await client.post(bind_url(vc), json={"credential": tampered, "holder": HOLDER},
                          headers=service_auth)
    assert r.status_code == 422 and "proof" in r.json()["detail"], r.text
    unknown = {**vc, "id": f"urn:uuid:{uuid.uuid4()}"}
    r = await client.post(bind_url(unknown), json={"credential": unknown, "holder": HOLDER},
                          headers=service_auth)
    assert r.status_code == 404, r.text
    r = await client.post(bind_url(unknown), json={"credential": vc, "holder": HOLDER},
                          headers=service_auth)
    assert r.status_code == 422, r.text  # the document is not the credential asked for
    r = await client.post(bind_url(vc), json={"credential": vc, "holder": "ada"},
                          headers=service_auth)
    assert r.status_code == 422, r.text  # not a did:key
    for status in ("suspended", "revoked"):
        async with world.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE issued_credentials SET status = :s"),
                               {"s": status})
        r = await client.post(bind_url(vc), json={"credential": vc, "holder": HOLDER},
                              headers=service_auth)
        assert r.status_code == 409, r.text
