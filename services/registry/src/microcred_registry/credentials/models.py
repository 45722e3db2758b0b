"""Tables of the credentials context: stored credentials exactly as issuance signed them,
and the projections of the issuer-keys and status-lists topics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from microcred_shared.db import utcnow


class CredentialRecord(SQLModel, table=True):
    __tablename__ = "credentials"
    credential_id: uuid.UUID = Field(primary_key=True)
    assessment_id: uuid.UUID | None = Field(default=None, unique=True)
    provider_id: str  # not indexed: no query finds credentials by issuer (migration 16)
    definition_id: str | None = None
    definition_version: int | None = None
    learner_key: str = Field(index=True)
    title: str
    # The signed JSON as issuance sent it (`json`, not `jsonb`: migration 14).
    document: dict[str, Any] = Field(sa_type=JSON)
    status: str = "active"  # active | revoked | suspended
    issued_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    registered_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    # The document's `id` where it is not `urn:uuid:<credential_id>`, else NULL (migration 16).
    custom_document_id: str | None = None


async def keep_documents_in_row(conn: AsyncConnection) -> None:
    """Migration 14: a credential's signed JSON is kept as its text (`json`), compressed,
    in its table row (`STORAGE MAIN`).

    Measured at 10 million credentials (bench/registry/README.md): as `jsonb` a signed
    credential (~4.2 KB of JSON) took ~2.6 KB after PostgreSQL's compression, over the
    ~2 KB at which a row's large values move out to the TOAST table; reading one cost its
    row, the TOAST index and two chunks, a learner's list of ten about 80 buffers, and
    the 30 GB table outgrew the machine's memory: the listing's p99 was 20-30 ms, from
    disk. As text it compresses to ~2.2 KB (jsonb's binary form compresses worse), and
    MAIN keeps it in the row unless the row could not fit a page: three credentials per
    page, one page read per credential, a smaller table. The registry serves the stored
    text as it is, so the text is also what goes out (byte for byte what issuance sent);
    the few queries that look inside a document parse it when they do.
    Rewrites the table (ALTER ... TYPE): on a large existing registry, plan the time."""
    await conn.execute(sa.text(
        "ALTER TABLE credentials ALTER COLUMN document TYPE json USING document::json"))
    await conn.execute(sa.text(
        "ALTER TABLE credentials ALTER COLUMN document SET STORAGE MAIN"))


# The columns of `credentials` PostgreSQL could move out of a row (variable-length: text
# and the document); the ids, the version and the dates are fixed-size and always in it.
CREDENTIAL_TEXT_COLUMNS = ("provider_id", "definition_id", "learner_key", "title", "status",
                           "document")


async def keep_credential_rows_whole(conn: AsyncConnection) -> None:
    """Migration 15: every column of a credential is kept in its row (`STORAGE MAIN`), not
    only its document (migration 14).

    A stored credential's row is ~2.4 KB (the ~2.2 KB compressed document and the rest),
    over the ~2 KB past which PostgreSQL shrinks a row before writing it. It does so in
    rounds, and the document, MAIN, is only compressed in the third: in the first two the
    row still holds the document's ~4.2 KB of text, so every EXTENDED value over 24 bytes,
    however short, was moved out to the TOAST table, one TOAST row and index entry each:
    the learner's key (a 36-character UUID) always, a title or a provider's or definition's
    id when longer than that. At 10 million credentials that was 0.90 GB of TOAST, ~90 B
    per row (bench/registry/README.md); each registration wrote one to four TOAST rows
    besides its own, and a learner's listing fetched the longer titles back from there.
    As notify's view does (its migration 6), all of it now stays in the row: the row is as
    large as before (the values move in, their TOAST pointers out), still three to a page.
    Measured (bench/e2e/README.md, wave 14): a registration costs the server 4-7% less CPU
    (5-10 us), the table with its indexes is 4% smaller, and nothing is in TOAST.
    Changes no stored row (no rewrite, instant): a value already in the TOAST table stays
    there (an UPDATE, a revocation's, keeps an unchanged value where it is) until the table
    is rewritten (VACUUM FULL brings them all back into their rows; tried)."""
    await conn.execute(sa.text("ALTER TABLE credentials " + ", ".join(
        f"ALTER COLUMN {c} SET STORAGE MAIN" for c in CREDENTIAL_TEXT_COLUMNS)))


async def index_credentials_for_their_reads(conn: AsyncConnection) -> None:
    """Migration 16: the tables a registration writes keep the indexes a query reads, and a
    registration no longer parses its document for one (issue 12, wave 17).

    - `ix_credentials_provider_id` is dropped: no query finds credentials by their issuer
      (an issuer's API key reads one credential by its id; the verification statement
      joins `issuers` by the credential's `provider_id`, not the other way round).
    - The expression index `(document->>'id')` (migration 12, ob_api's upsert: is this
      credential one issued here?) is replaced: each registration parsed its ~4 KB
      document once more to index an `id` that is `urn:uuid:<credential_id>` for every
      credential issuance names itself, i.e. already indexed by the primary key. A new
      column `custom_document_id` holds the `id` only where it is another (a VC-API
      caller's own), indexed where it is set; the lookup reads the primary key for a
      `urn:uuid` id and that column for any other (`ob_api.handlers`).
    - `ix_wallet_exchanges_credential_id` is dropped: an exchange (one per mailed
      credential, opened in the registration's transaction) is only ever read by its id.
    Existing rows are filled in by parsing each stored document once (a full scan: on a
    large registry, plan the time, as for migration 14); a row is only rewritten where its
    document names another id."""
    await conn.execute(sa.text(
        "ALTER TABLE credentials ADD COLUMN IF NOT EXISTS custom_document_id text"))
    await conn.execute(sa.text(
        "ALTER TABLE credentials ALTER COLUMN custom_document_id SET STORAGE MAIN"))
    await conn.execute(sa.text(
        "UPDATE credentials SET custom_document_id = document->>'id' "
        "WHERE json_typeof(document->'id') = 'string' "
        "AND document->>'id' <> 'urn:uuid:' || credential_id::text"))
    await conn.execute(sa.text(
        "CREATE INDEX IF NOT EXISTS ix_credentials_custom_document_id "
        "ON credentials (custom_document_id) WHERE custom_document_id IS NOT NULL"))
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_credentials_document_id"))
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_credentials_provider_id"))
    await conn.execute(sa.text("DROP INDEX IF EXISTS ix_wallet_exchanges_credential_id"))


class IssuerRecord(SQLModel, table=True):
    """Projection of the compacted issuer-keys topic: what /issuers/{id} serves."""

    __tablename__ = "issuers"
    provider_id: str = Field(primary_key=True)
    profile: dict[str, Any] = Field(sa_type=JSONB)
    keys: list[dict[str, Any]] = Field(sa_type=JSONB)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class _OwnMetadata(SQLModel, registry=registry()):
    """Issuance has a `status_lists` table of its own; in one Python process (the test
    suite) two table models of one name need two MetaData collections."""


class StatusListRecord(_OwnMetadata, table=True):
    """Projection of the compacted status-lists topic: signed lists served as they are."""

    __tablename__ = "status_lists"
    url: str = Field(primary_key=True)
    provider_id: str
    version: int
    credential: dict[str, Any] = Field(sa_type=JSONB)
    published_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class StatusEvent(SQLModel, table=True):
    """Every status change of a credential, with the provider's reason."""

    __tablename__ = "status_events"
    id: int | None = Field(default=None, primary_key=True)
    credential_id: uuid.UUID = Field(index=True)
    action: str
    status: str
    reason: str
    changed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))



async def index_definition_versions(conn: Any) -> None:
    """Migration 5: find a credential of a definition version (its badge is drawn from it)."""
    await conn.execute(sa.text(
        "CREATE INDEX IF NOT EXISTS ix_credentials_definition_version "
        "ON credentials (definition_id, definition_version)"))
