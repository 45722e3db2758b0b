"""Use case: a credential issued again to the DID its holder proved control of, for the
registry's wallet exchange (ADR 27). Signed by the credential's issuer with its active key,
with the original's status entries: revoking or suspending the original reaches the copy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance.issuing import bound_copy
from microcred_issuance.issuing.bound_copy import NotCopied
from microcred_issuance.issuing.handlers import Issuing
from microcred_issuance.issuing.models import BoundCopy
from microcred_issuance.keys.domain import issuer_id
from microcred_issuance.status.domain import status_entries
from microcred_shared.db import table_of

_ORIGINAL = sa.text("SELECT provider_id, status_index, status, suspendable "
                    "FROM issued_credentials "
                    "WHERE credential_id = :id")


class Unknown(LookupError):
    pass


class NotActive(ValueError):
    pass


async def bind(conn: AsyncConnection, ctx: Issuing, credential_id: uuid.UUID,
               document: dict[str, Any], holder: str) -> dict[str, Any]:
    """The signed copy of `document` (credential `credential_id`) bound to `holder`."""
    bound_copy.check_holder(holder)
    row = (await conn.execute(_ORIGINAL, {"id": credential_id})).first()
    if row is None:
        raise Unknown(f"no credential {credential_id} was issued here")
    if row.status != "active":
        raise NotActive(f"credential {credential_id} is {row.status}")
    bound_copy.check_original(
        document, issuer=issuer_id(ctx.base_url, row.provider_id),
        status=status_entries(ctx.base_url, row.provider_id, row.status_index,
                              suspendable=row.suspendable))
    await ctx.keys.ensure_loaded(row.provider_id)
    key = ctx.keys.active(row.provider_id)
    copy_id = uuid.uuid4()
    signed = ctx.signer.credential(bound_copy.bound_copy(document, copy_id, holder), key,
                                   bound_copy.cryptosuite_of(document))
    await conn.execute(sa.insert(table_of(BoundCopy)).values(
        copy_id=copy_id, credential_id=credential_id, provider_id=row.provider_id,
        holder=holder, key_id=key.key_id, issued_at=datetime.now(UTC)))
    return signed


__all__ = ["NotActive", "NotCopied", "Unknown", "bind"]
