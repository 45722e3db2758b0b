"""Use cases of the credentials context: record credentials, issuer keys, status lists and
status changes from Kafka (announcing each new registration), and read back what the
registry serves: a credential's signed document, a learner's list, an issuer's controller
document, a signed status list."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_registry import reads
from microcred_registry.credentials.domain import (
    controller_document,
    custom_id,
    did_document,
    document_text,
    listing,
    listing_json,
    registration,
)
from microcred_registry.credentials.models import (
    CredentialRecord,
    IssuerRecord,
    StatusEvent,
    StatusListRecord,
)
from microcred_shared.consumer import Incoming
from microcred_shared.contract import topics
from microcred_shared.contract.events import (
    CredentialIssued,
    CredentialStatusChanged,
    IssuerKeysPublished,
    StatusListPublished,
)
from microcred_shared.db import driver_in_transaction, table_of
from microcred_shared.outbox import event_record
from microcred_shared.problems import Problem

SOURCE = "/microcred/registry"
# Opens the issue mail's wallet exchanges, in the registration's transaction: (credential
# id, learner key) of each mailed credential → (deep link, QR code URL). Given by main (the
# delivery context), so this context does not depend on it.
WalletLinks = Callable[[AsyncConnection, list[tuple[uuid.UUID, str]]],
                       Awaitable[dict[uuid.UUID, tuple[str, str]]]]


# One cached statement per batch whatever its size (arrays in, ids out). The document is
# the signed JSON exactly as issuance sent it, never re-encoded here: its text cut out of
# the record (`domain.document_text`, parsed once by PostgreSQL to check it), or where it
# cannot be cut safely taken by PostgreSQL from the whole record (`-> 'credential'`, as
# before wave 17: the same text). `custom` is the document's `id` where it is not
# `urn:uuid:<credential id>` (migration 16). Inside the consumer's transaction it is sent
# on the driver's connection (skipping SQLAlchemy's work per statement:
# `db.driver_in_transaction`), through SQLAlchemy otherwise.
_REGISTER_ARRAYS = ("cids", "aids", "pids", "dids", "vers", "lkeys", "titles", "docs",
                    "payloads", "issued", "custom")
_REGISTER_SQL = (
    "INSERT INTO credentials (credential_id, assessment_id, provider_id, definition_id, "
    "definition_version, learner_key, title, document, status, issued_at, registered_at, "
    "custom_document_id) "
    "SELECT c, a, p, d, v, l, t, COALESCE(CAST(convert_from(x, 'UTF8') AS json), "
    "CAST(convert_from(b, 'UTF8') AS json) -> 'credential'), 'active', i, now(), o "
    "FROM unnest(CAST({cids} AS uuid[]), CAST({aids} AS uuid[]), "
    "CAST({pids} AS text[]), CAST({dids} AS text[]), CAST({vers} AS int[]), "
    "CAST({lkeys} AS text[]), CAST({titles} AS text[]), CAST({docs} AS bytea[]), "
    "CAST({payloads} AS bytea[]), CAST({issued} AS timestamptz[]), "
    "CAST({custom} AS text[])) AS u(c, a, p, d, v, l, t, x, b, i, o) "
    "ON CONFLICT DO NOTHING RETURNING credential_id")
_REGISTER = sa.text(_REGISTER_SQL.format(**{k: f":{k}" for k in _REGISTER_ARRAYS}))
_REGISTER_DRIVER = _REGISTER_SQL.format(**{k: f"${n}" for n, k in
                                           enumerate(_REGISTER_ARRAYS, start=1)})


async def _register(conn: AsyncConnection, pairs: list[tuple[Incoming, CredentialIssued]],
                    ) -> set[str]:
    """Insert the batch's credentials not registered yet; the ids inserted (as text)."""
    docs: list[bytes | None] = []
    payloads: list[bytes | None] = []
    for i, _ in pairs:
        value = bytes(i.record.value or b"")
        doc = document_text(value)
        docs.append(doc)
        payloads.append(value if doc is None else None)
    arrays = ([e.credential_id for _, e in pairs], [e.assessment_id for _, e in pairs],
              [e.provider_id for _, e in pairs], [e.definition_id for _, e in pairs],
              [e.definition_version for _, e in pairs], [e.learner_key for _, e in pairs],
              [e.title for _, e in pairs], docs, payloads,
              [e.issued_at for _, e in pairs], [custom_id(e) for _, e in pairs])
    if (driver := await driver_in_transaction(conn)) is not None:
        return {str(r[0]) for r in await driver.fetch(_REGISTER_DRIVER, *arrays)}
    return {str(cid) for cid in (await conn.execute(
        _REGISTER, dict(zip(_REGISTER_ARRAYS, arrays, strict=True)))).scalars()}


async def on_issued(conn: AsyncConnection, items: list[Incoming], *,
                    base_url: str, wallet_links: WalletLinks | None = None) -> dict[int, str]:
    events: dict[str, tuple[Incoming, CredentialIssued]] = {}
    for item in items:
        assert isinstance(item.event, CredentialIssued)
        events.setdefault(str(item.event.credential_id), (item, item.event))
    inserted = await _register(conn, list(events.values()))
    now = datetime.now(UTC)
    mailed = [(e.credential_id, e.learner_key) for cid, (_, e) in events.items()
              if cid in inserted and e.learner_email]
    wallets = await wallet_links(conn, mailed) if wallet_links and mailed else {}
    for cid, (item, e) in events.items():
        if cid not in inserted:
            continue  # already registered: a redelivery
        registered = registration(e, base_url, now, wallets.get(e.credential_id))
        item.outgoing.append(event_record(
            topics.CREDENTIALS_REGISTERED, registered, SOURCE,
            traceparent=item.traceparent, subject=cid))
    return {}


async def on_issuer_keys(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    latest: dict[str, IssuerKeysPublished] = {}
    for item in items:
        assert isinstance(item.event, IssuerKeysPublished)
        latest[item.event.provider_id] = item.event
    table = table_of(IssuerRecord)
    for e in latest.values():
        values = {"provider_id": e.provider_id, "profile": e.profile,
                  "keys": [k.model_dump(mode="json") for k in e.keys],
                  "updated_at": e.published_at}
        await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
            index_elements=[table.c.provider_id],
            set_={k: v for k, v in values.items() if k != "provider_id"},
            where=table.c.updated_at <= e.published_at))
    return {}


async def on_status_list(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    table = table_of(StatusListRecord)
    for item in items:
        e = item.event
        assert isinstance(e, StatusListPublished)
        values = {"url": e.url, "provider_id": e.provider_id, "version": e.version,
                  "credential": e.credential, "published_at": e.published_at}
        # Lists arrive in order per url (keyed topic); the guard keeps a replay harmless.
        await conn.execute(pg_insert(table).values(values).on_conflict_do_update(
            index_elements=[table.c.url],
            set_={k: v for k, v in values.items() if k != "url"},
            where=table.c.version <= e.version))
    return {}


# One cached statement per batch whatever its size (arrays in): every change is kept in
# `status_events`, in arrival order (its ids, which `issuer_reason` reads the latest by);
# each credential takes the status of its last change in the batch. A change for a
# credential not (yet) registered is kept all the same, as before.
_STATUS_CHANGED = sa.text(
    "WITH u AS (SELECT * FROM unnest(CAST(:cids AS uuid[]), CAST(:actions AS text[]), "
    "CAST(:statuses AS text[]), CAST(:reasons AS text[]), CAST(:changed AS timestamptz[])) "
    "WITH ORDINALITY AS u(c, a, s, r, t, n)), "
    "e AS (INSERT INTO status_events (credential_id, action, status, reason, changed_at) "
    "SELECT c, a, s, r, t FROM u ORDER BY n), "
    "last AS (SELECT DISTINCT ON (c) c, s FROM u ORDER BY c, n DESC) "
    "UPDATE credentials SET status = last.s FROM last WHERE credential_id = last.c")


async def on_status_changed(conn: AsyncConnection, items: list[Incoming]) -> dict[int, str]:
    """Revocations, suspensions and reinstatements as issuance announced them: one
    statement per batch (it used to be an UPDATE and an INSERT per event: issue 12)."""
    events: list[CredentialStatusChanged] = []
    for item in items:
        assert isinstance(item.event, CredentialStatusChanged)
        events.append(item.event)
    if events:
        await conn.execute(_STATUS_CHANGED, {
            "cids": [e.credential_id for e in events], "actions": [e.action for e in events],
            "statuses": [e.status for e in events], "reasons": [e.reason for e in events],
            "changed": [e.changed_at for e in events]})
    return {}


# --- what the registry serves ----------------------------------------------------------


async def credential(conn: AsyncConnection, credential_id: uuid.UUID) -> Any:
    """The stored credential's row, or None."""
    return (await conn.execute(sa.select(CredentialRecord).where(
        col(CredentialRecord.credential_id) == credential_id))).first()


async def document(engine: AsyncEngine, credential_id: uuid.UUID) -> dict[str, Any]:
    """The signed credential as issuance sent it, whoever asks: for the registry's own use.
    What a caller may read over HTTP is wallet.sharing.readable (ADR 9). 404 problem when
    there is none."""
    async with engine.connect() as conn:
        doc = (await conn.execute(sa.select(col(CredentialRecord.document)).where(
            col(CredentialRecord.credential_id) == credential_id))).scalar_one_or_none()
    if doc is None:
        raise Problem(404, "Not found", f"no credential {credential_id}", kind="not-found")
    return dict(doc)


_LISTING = (
    "SELECT credential_id, title, provider_id, status, issued_at, document::text AS document "
    "FROM credentials WHERE learner_key = $1 ORDER BY issued_at")


async def learner_credentials_json(engine: AsyncEngine, learner_key: str, base: str) -> bytes:
    """`learner_credentials` as the JSON sent, in one round trip on the read engine
    (microcred_registry.reads): each stored document goes out as the text PostgreSQL
    holds, never parsed nor encoded again here."""
    rows = await reads.fetch(engine, _LISTING, learner_key)
    return listing_json(learner_key, rows, base).encode()


async def learner_credentials(engine: AsyncEngine, learner_key: str,
                              base: str) -> dict[str, Any]:
    """Every credential of one learner, oldest first (for operators)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(
            col(CredentialRecord.credential_id), col(CredentialRecord.title),
            col(CredentialRecord.provider_id), col(CredentialRecord.status),
            col(CredentialRecord.issued_at), col(CredentialRecord.document),
        ).where(col(CredentialRecord.learner_key) == learner_key).order_by(
            col(CredentialRecord.issued_at)))).all()
    return {"learner": learner_key, "count": len(rows),
            "credentials": [listing(r, base) for r in rows]}


async def issuer_document(conn: AsyncConnection, provider_id: str, base: str, *,
                          did: bool = False) -> dict[str, Any] | None:
    """The issuer's DID document (`did`), or its profile and controller document."""
    row = (await conn.execute(sa.select(IssuerRecord).where(
        col(IssuerRecord.provider_id) == provider_id))).first()
    if row is None:
        return None
    return did_document(row, base) if did else controller_document(row, base)


# The current version of every document a stored credential's verification reads from our
# own database: each status list it points into (version, by URL), its issuer's keys
# (`issuer:<provider>`: a digest of the projected profile and keys, which changes whenever
# they do) and, for the credential's page, the trust list's providers (`providers`: their
# count and latest change, as microcred_shared.projection tells a change). A column of the
# statement that reads the credential (wallet.sharing.read_by_id, `c` the credentials row):
# documents whose version has not changed are taken from memory (microcred_registry.
# verification.handlers, trust.handlers), still with one round trip.
VERIFICATION_VERSIONS = (
    "(SELECT coalesce(jsonb_object_agg(x.k, x.v), '{}')::text FROM ("
    "SELECT s.url AS k, s.version::text AS v FROM status_lists s WHERE s.url IN ("
    "SELECT jsonb_path_query(c.document::jsonb, 'lax $.credentialStatus[*].statusListCredential') "
    "#>> '{}') "
    "UNION ALL SELECT 'issuer:' || i.provider_id, md5(i.profile::text || i.keys::text) "
    "FROM issuers i WHERE i.provider_id = c.provider_id "
    "UNION ALL SELECT 'providers', count(*)::text || '@' || coalesce(max(p.updated_at)::text, "
    "'') FROM catalog_providers p) AS x) AS versions")


def issuer_version_key(provider_id: str) -> str:
    return f"issuer:{provider_id}"


_ISSUER = ("SELECT provider_id, profile::text AS profile, keys::text AS keys, "
           "md5(profile::text || keys::text) AS version FROM issuers WHERE provider_id = $1")


async def issuer_document_versioned(engine: AsyncEngine, provider_id: str, base: str, *,
                                    did: bool) -> tuple[dict[str, Any], str] | None:
    """`issuer_document` and its version (as VERIFICATION_VERSIONS states it), one round
    trip on the read engine."""
    row = await reads.fetchrow(engine, _ISSUER, provider_id)
    if row is None:
        return None
    issuer = SimpleNamespace(provider_id=row["provider_id"], profile=json.loads(row["profile"]),
                             keys=json.loads(row["keys"]))
    doc = did_document(issuer, base) if did else controller_document(issuer, base)
    return doc, row["version"]


_STATUS_LIST = "SELECT credential::text AS credential, version FROM status_lists WHERE url = $1"


async def status_list_json(engine: AsyncEngine, url: str) -> tuple[str, int] | None:
    """The signed status list at `url` as its stored JSON text, and its version: one round
    trip on the read engine."""
    row = await reads.fetchrow(engine, _STATUS_LIST, url)
    return None if row is None else (row["credential"], row["version"])


async def status_list(conn: AsyncConnection, url: str) -> tuple[dict[str, Any], int] | None:
    """The signed status list published at `url` and its version (for ETags)."""
    row = (await conn.execute(sa.select(
        col(StatusListRecord.credential), col(StatusListRecord.version)).where(
        col(StatusListRecord.url) == url))).first()
    return None if row is None else (dict(row.credential), row.version)


_REASON = ("SELECT reason FROM status_events WHERE credential_id = $1 "
           "ORDER BY id DESC LIMIT 1")


async def issuer_reason_read(engine: AsyncEngine, credential_id: uuid.UUID) -> str:
    """`issuer_reason` in one round trip on the read engine (microcred_registry.reads)."""
    row = await reads.fetchrow(engine, _REASON, credential_id)
    return (row["reason"] if row else None) or ""


async def issuer_reason(conn: AsyncConnection, credential_id: uuid.UUID) -> str:
    """The reason the issuer gave for the credential's latest status change."""
    reason = (await conn.execute(sa.select(col(StatusEvent.reason)).where(
        col(StatusEvent.credential_id) == credential_id).order_by(
        col(StatusEvent.id).desc()).limit(1))).scalar_one_or_none()
    return reason or ""


async def of_definition_version(conn: AsyncConnection, definition_id: str,
                                version: int) -> dict[str, Any] | None:
    """The signed document of one credential of a definition version, or None: every
    credential of a version states the same achievement, issuer and level."""
    found = (await conn.execute(
        sa.select(col(CredentialRecord.document))
        .where(col(CredentialRecord.definition_id) == definition_id,
               col(CredentialRecord.definition_version) == version)
        .limit(1))).scalar_one_or_none()
    return dict(found) if found is not None else None
