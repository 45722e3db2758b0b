"""Use case: a credential issued again to the DID its holder proved control of (ADR 27,
revised by ADR 31), for both ways a wallet takes a credential from the registry — the
Learner Credential Wallet's VC-API exchange and OpenID4VCI. Issuance signs only what it
signed itself: the credential is in its register and active, names the issuer and status
entries it was issued with, and its proof verifies with that issuer's own keys (read from
the key store, never resolved over the network). The copy is a new credential (a new
`urn:uuid` id) naming the holder, with the original's status entries: revoking or
suspending the original reaches every copy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance.issuing import bound_copy
from microcred_issuance.issuing.bound_copy import NotCopied
from microcred_issuance.issuing.handlers import Issuing
from microcred_issuance.issuing.models import BoundCopy
from microcred_issuance.keys.domain import issuer_id
from microcred_issuance.status.domain import status_entries
from microcred_shared.db import table_of
from microcred_shared.vc import proofs
from microcred_shared.vc.errors import VcError
from microcred_shared.vc.keys import multikey_decode

_ORIGINAL = sa.text("SELECT provider_id, status_index, status, suspendable "
                    "FROM issued_credentials "
                    "WHERE credential_id = :id")


class Unknown(LookupError):
    pass


class NotActive(ValueError):
    pass


async def _check_proof(ctx: Issuing, provider_id: str, issuer: str,
                       document: dict[str, Any]) -> str | None:
    """The original's proof, checked with the issuer's own keys; its cryptosuite."""
    keys = {k["key_id"]: k["public_multikey"] for k in await ctx.keys.public_keys(provider_id)}

    async def resolve(vm: str) -> Ed25519PublicKey:
        did, _, key_id = vm.partition("#")
        if did != issuer or not keys.get(key_id):
            raise VcError(f"{vm} is not a key of the issuer")
        return multikey_decode(str(keys[key_id]))

    try:
        result = await proofs.verify_proof(document, resolve)
    except VcError as exc:
        raise NotCopied(f"its proof does not verify: {exc}") from exc
    if not result.ok:
        raise NotCopied(f"its proof does not verify: {result.reason}")
    return result.cryptosuite


async def bind(conn: AsyncConnection, ctx: Issuing, credential_id: uuid.UUID,
               document: dict[str, Any], holder: str) -> dict[str, Any]:
    """The signed copy of `document` (credential `credential_id`) bound to `holder`."""
    bound_copy.check_holder(holder)
    if document.get("id") != f"urn:uuid:{credential_id}":
        raise NotCopied(f"the document is not credential {credential_id}")
    row = (await conn.execute(_ORIGINAL, {"id": credential_id})).first()
    if row is None:
        raise Unknown(f"no credential {credential_id} was issued here")
    if row.status != "active":
        raise NotActive(f"credential {credential_id} is {row.status}")
    issuer = issuer_id(ctx.base_url, row.provider_id)
    bound_copy.check_original(
        document, issuer=issuer,
        status=status_entries(ctx.base_url, row.provider_id, row.status_index,
                              suspendable=row.suspendable))
    suite = await _check_proof(ctx, row.provider_id, issuer, document)
    await ctx.keys.ensure_loaded(row.provider_id)
    key = ctx.keys.active(row.provider_id)
    copy_id = uuid.uuid4()
    signed = ctx.signer.credential(bound_copy.bound_copy(document, copy_id, holder), key,
                                   suite)
    await conn.execute(sa.insert(table_of(BoundCopy)).values(
        copy_id=copy_id, credential_id=credential_id, provider_id=row.provider_id,
        holder=holder, key_id=key.key_id, issued_at=datetime.now(UTC)))
    return signed


__all__ = ["NotActive", "NotCopied", "Unknown", "bind"]
