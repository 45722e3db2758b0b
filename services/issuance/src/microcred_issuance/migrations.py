"""The issuance database, in the order a deployed database saw it: the contexts' tables
moved into their subpackages, the migrations did not change."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance.issuing.models import BoundCopy
from microcred_issuance.keys.models import IssuerKey
from microcred_issuance.stacks.models import StackAward
from microcred_issuance.status.models import IssuedCredential, StatusAllocation, StatusList
from microcred_shared import projection
from microcred_shared.auth import ApiKey
from microcred_shared.db import (
    SHARED_TABLES,
    add_inbox_digest,
    add_outbox_shard,
    create_tables,
    keep_outbox_rows_inline,
    table_of,
)


async def add_suspendable(conn: AsyncConnection) -> None:
    """Every credential issued before this step carries both status entries: it stays
    suspendable. New rows say what their definition says (default false). A database
    created after the column existed has it already (create_tables)."""
    await conn.execute(sa.text("ALTER TABLE issued_credentials ADD COLUMN IF NOT EXISTS "
                               "suspendable boolean NOT NULL DEFAULT true"))
    await conn.execute(sa.text("ALTER TABLE issued_credentials ALTER COLUMN suspendable "
                               "SET DEFAULT false"))


async def drop_unread_provider_index(conn: AsyncConnection) -> None:
    """Migration 8 (issue 12, wave 18): `issued_credentials` loses
    `ix_issued_credentials_provider_id`. No query reads the register by issuer (status
    changes and holder binding find a row by its credential id, stacks by the learner's
    key, a redelivered decision by its assessment id), yet every credential issued wrote an
    entry in it. A database created after this step never has it (the model no longer asks
    for it); one that has it loses it here. Instant, no table rewrite."""
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_issued_credentials_provider_id"))


MIGRATIONS = [
    create_tables([*SHARED_TABLES, table_of(ApiKey), table_of(IssuerKey),
                   table_of(IssuedCredential), table_of(StatusAllocation),
                   table_of(StatusList)]),
    create_tables([*projection.TABLES, table_of(StackAward)]),
    add_inbox_digest,  # 3: conflicting duplicates are refused (issue 13)
    create_tables([table_of(BoundCopy)]),  # 4: holder-bound copies (ADR 27)
    add_suspendable,  # 5: whether a credential carries a suspension entry (ADR 8)
    add_outbox_shard,  # 6: instances share publishing by shard (ADR 2)
    keep_outbox_rows_inline,  # 7: signed credentials' events not compressed (issue 12)
    drop_unread_provider_index,  # 8: no index nobody reads on issued_credentials (issue 12)
]
