"""The employer feed's projection of credentials (document, status, the holder's visibility
choice) and the effects of a batch of changes on it: employer events (the feed entry and
one webhook delivery per matching endpoint), exposures and cancelled deliveries, written in
the consumer's transaction. The rules themselves (privacy, filters, transitions) are in
domain.py; the Kafka handlers that drive this are in handlers.py."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from microcred_notify.employer_feed.crypto import webhook_id
from microcred_notify.employer_feed.domain import (
    SHARED,
    UNSHARED,
    Facts,
    Filters,
    Sub,
    targets,
    transitions,
)
from microcred_notify.employer_feed.models import (
    CredentialView,
    Employer,
    EmployerEvent,
    Exposure,
    Subscription,
    WebhookDelivery,
)
from microcred_shared.consumer import Incoming
from microcred_shared.db import table_of

VIEW = table_of(CredentialView)


async def live_subscriptions(conn: AsyncConnection) -> list[Sub]:
    """Subscriptions of approved employers that still take events (a disabled endpoint
    still feeds the pull feed; its deliveries wait until it is enabled again)."""
    rows = (await conn.execute(sa.select(
        col(Subscription.id), col(Subscription.employer_id), col(Subscription.filters),
        col(Subscription.webhook_url), col(Subscription.status),
    ).join(Employer, col(Employer.id) == col(Subscription.employer_id)).where(
        col(Employer.status) == "approved",
        col(Subscription.status).in_(("active", "disabled"))))).all()
    return [Sub(r.id, r.employer_id, Filters.model_validate(r.filters), r.webhook_url is not None,
                r.status == "active") for r in rows]


# Array statements, cached whatever the batch size (a multi-row VALUES insert and an IN
# list are recompiled per size, which the e2e profile showed in every consumer).
_CREATE_VIEWS = sa.text(
    "INSERT INTO employer_credential_view (credential_id, learner_key, provider_id, skills, "
    "status, visibility, shared_with) SELECT c, l, p, CAST('[]' AS jsonb), 'active', 'private', "
    "CAST('[]' AS jsonb) "
    "FROM unnest(CAST(:credential_id AS uuid[]), CAST(:learner_key AS text[]), "
    "CAST(:provider_id AS text[])) AS u(c, l, p) ORDER BY c ON CONFLICT DO NOTHING")
# A credential's view written whole when it is new (the common case: the document comes
# first), in credential-id order like _CREATE_VIEWS: one row version instead of an insert,
# a lock and an update carrying the document, and no lock or read at all (issue 12). A new
# view is private and shared with nobody, so no employer is told anything yet. The document
# is the `credential` member's text as the event carried it (`json`, migration 6): not
# parsed into jsonb, compressed and kept in the row. Each row gives either that text
# (`document`, cut out of the event by the handler: checked once) or, when it could not be
# cut out, the event's (`source`, whose member the database takes out: parsed twice).
_INSERT_NEW_VIEWS = sa.text(
    "INSERT INTO employer_credential_view (credential_id, learner_key, provider_id, "
    "definition_id, jurisdiction, skills, document, status, visibility, shared_with) "
    "SELECT c, l, p, d, j, CAST(s AS jsonb), "
    "COALESCE(CAST(m AS json), CAST(e AS json) -> 'credential'), 'active', "
    "'private', CAST('[]' AS jsonb) "
    "FROM unnest(CAST(:credential_id AS uuid[]), CAST(:learner_key AS text[]), "
    "CAST(:provider_id AS text[]), CAST(:definition_id AS text[]), "
    "CAST(:jurisdiction AS text[]), CAST(:skills AS text[]), CAST(:document AS text[]), "
    "CAST(:source AS text[])) "
    "AS u(c, l, p, d, j, s, m, e) ORDER BY c ON CONFLICT DO NOTHING RETURNING credential_id")
_LOCK_VIEWS = sa.select(VIEW).where(
    VIEW.c.credential_id == sa.any_(sa.cast(sa.bindparam("ids"), ARRAY(sa.Uuid())))
).order_by(VIEW.c.credential_id).with_for_update()


# JSON columns by the type they are cast to: `document` is `json` text, the others `jsonb`.
_JSON_COLUMNS = {c.name: "jsonb" if isinstance(c.type, JSONB) else "json"
                 for c in VIEW.c if isinstance(c.type, sa.JSON)}
_EXPOSURES = sa.select(
    col(Exposure.employer_id), col(Exposure.credential_id), col(Exposure.visible)).where(
    col(Exposure.credential_id) == sa.any_(sa.cast(sa.bindparam("ids"), ARRAY(sa.Uuid()))))


def _array_of(kind: sa.types.TypeEngine[Any]) -> str:
    if isinstance(kind, sa.types.TypeDecorator):  # SQLModel's AutoString
        kind = kind.impl_instance
    for base, array in ((sa.Uuid, "uuid[]"), (sa.DateTime, "timestamptz[]"),
                        (sa.String, "text[]")):
        if isinstance(kind, base):
            return array
    raise TypeError(f"no array type for {kind!r}")


@functools.cache
def _update_views(columns: tuple[str, ...]) -> sa.TextClause:
    """One UPDATE of many views from arrays (one per column): one statement per batch,
    cached per column set whatever the batch size. JSON values travel as JSON text; a
    `document` as the text of the event it came from, whose `credential` member it is."""
    arrays, sets = ["CAST(:cid AS uuid[])"], []
    for c in columns:
        kind = VIEW.c[c].type
        if c in _JSON_COLUMNS:
            arrays.append(f"CAST(:v_{c} AS text[])")
            value = f"CAST(u.{c} AS {_JSON_COLUMNS[c]})"
            if c == "document":
                value = f"({value} -> 'credential')"
        else:
            arrays.append(f"CAST(:v_{c} AS {_array_of(kind)})")
            value = f"u.{c}"
        sets.append(f"{c} = {value}")
    return sa.text(
        f"UPDATE employer_credential_view AS v SET {', '.join(sets)} "
        f"FROM unnest({', '.join(arrays)}) AS u(cid, {', '.join(columns)}) "
        "WHERE v.credential_id = u.cid")


async def lock_views(conn: AsyncConnection, rows: dict[uuid.UUID, dict[str, Any]]
                     ) -> dict[uuid.UUID, SimpleNamespace]:
    """Create missing projection rows and lock them all, in credential-id order: the three
    consumers (issued, visibility, status) then never deadlock on one another."""
    ordered = [rows[cid] for cid in sorted(rows)]
    await conn.execute(_CREATE_VIEWS, {k: [r[k] for r in ordered]
                                       for k in ("credential_id", "learner_key", "provider_id")})
    locked = await conn.execute(_LOCK_VIEWS, {"ids": sorted(rows)})
    # The column names once per batch: Row._asdict() rebuilt them for every row, which the
    # e2e profile showed as half of this function's time.
    names = tuple(locked.keys())
    return {(view := SimpleNamespace(**dict(zip(names, r, strict=True)))).credential_id: view
            for r in locked}


async def insert_new_views(conn: AsyncConnection, rows: list[dict[str, Any]]
                           ) -> set[uuid.UUID]:
    """Write the views of credentials not seen before whole (`rows`: the view's columns,
    `skills` as JSON text, and either `document`, the credential's JSON text, or `source`,
    the JSON text of the event whose `credential` member is the document); returns the ids
    written. The others exist already (a visibility choice or a status came first, or a
    redelivery): they take the locked path."""
    if not rows:
        return set()
    ordered = sorted(rows, key=lambda r: r["credential_id"])
    written = await conn.execute(_INSERT_NEW_VIEWS, {k: [r.get(k) for r in ordered] for k in (
        "credential_id", "learner_key", "provider_id", "definition_id", "jurisdiction",
        "skills", "document", "source")})
    return {cid for (cid,) in written}


def view_facts(view: Any) -> Facts:
    return Facts(view.provider_id, view.definition_id, view.jurisdiction,
                 frozenset(view.skills or ()))


def _body(kind: str, view: Any, event_id: uuid.UUID, base_url: str, now: datetime,
          extra: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"credential_id": str(view.credential_id),
                            "credential_url": f"{base_url}/v1/credentials/{view.credential_id}"}
    if kind != UNSHARED:  # an unshare notice says which credential, and nothing about it
        data |= {"provider_id": view.provider_id, "definition_id": view.definition_id,
                 "jurisdiction": view.jurisdiction, "status": view.status}
    if kind == SHARED:
        data["credential"] = view.document
    return {"id": str(event_id), "type": kind, "timestamp": now.isoformat(),
            "data": data | extra}


class Effects:
    """What one batch does, gathered in memory and written in a few statements: a batch of
    500 visibility changes costs a handful of round trips, not thousands."""

    def __init__(self, exposures: dict[tuple[str, uuid.UUID], bool], subs: list[Sub], *,
                 base_url: str) -> None:
        self.exposures, self.subs, self.base_url = exposures, subs, base_url
        self.now = datetime.now(UTC)
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.unshared: set[tuple[str, uuid.UUID]] = set()
        self.changed: set[tuple[str, uuid.UUID]] = set()
        self.views: dict[uuid.UUID, dict[str, Any]] = {}
        self.sources: dict[uuid.UUID, str] = {}

    @classmethod
    async def load(cls, conn: AsyncConnection, credential_ids: Iterable[uuid.UUID], *,
                   base_url: str) -> Effects:
        rows = (await conn.execute(_EXPOSURES, {"ids": list(credential_ids)})).all()
        return cls({(r.employer_id, r.credential_id): r.visible for r in rows},
                   await live_subscriptions(conn), base_url=base_url)

    def exposed(self, credential_id: uuid.UUID) -> set[str]:
        return {e for (e, c), visible in self.exposures.items()
                if c == credential_id and visible}

    def emit(self, employer_id: str, view: Any, kind: str, subs: Iterable[Sub],
             extra: dict[str, Any] | None = None) -> None:
        event_id = uuid.uuid4()
        body = _body(kind, view, event_id, self.base_url, self.now, extra or {})
        self.events.append({"event_id": event_id, "employer_id": employer_id,
                            "credential_id": view.credential_id, "type": kind, "body": body,
                            "created_at": self.now})
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        self.deliveries += [{
            "id": uuid.uuid4(), "subscription_id": s.id, "employer_id": employer_id,
            "credential_id": view.credential_id, "event_id": event_id, "event_type": kind,
            "webhook_id": webhook_id(event_id, s.id), "body": raw, "status": "pending",
            "attempts": 0, "next_attempt_at": self.now, "created_at": self.now,
            "finished_at": None, "last_error": None} for s in subs if s.webhook]

    def expose(self, employer_id: str, credential_id: uuid.UUID, visible: bool) -> None:
        key = (employer_id, credential_id)
        self.exposures[key] = visible
        self.changed.add(key)
        if not visible:
            # Unsharing stops what is still on its way, retries included.
            self.unshared.add(key)
            for d in self.deliveries:
                if (d["employer_id"], d["credential_id"]) == key and d["event_type"] != UNSHARED:
                    d |= {"status": "cancelled", "finished_at": self.now,
                          "last_error": "no longer visible to this employer"}

    def reconcile(self, view: Any, previously_shared_with: Iterable[str] = ()) -> None:
        """Tell each employer whose view of the credential changed: shared or unshared."""
        if view.document is None:
            return  # visibility known before the document: shared once the document arrives
        facts = view_facts(view)
        direct = set(view.shared_with) | set(previously_shared_with)
        for employer_id, kind in transitions(
                facts=facts, visibility=view.visibility, shared_with=list(view.shared_with),
                exposed=self.exposed(view.credential_id), approved_subs=self.subs):
            self.emit(employer_id, view, kind,
                      targets(self.subs, employer_id, facts, employer_id in direct),
                      {"unshared_at": self.now.isoformat()} if kind == UNSHARED else None)
            self.expose(employer_id, view.credential_id, kind == SHARED)

    async def write(self, conn: AsyncConnection) -> bool:
        """Says whether it wrote webhook deliveries (the worker is woken for them)."""
        for pair in sorted(self.unshared, key=str):
            await conn.execute(sa.update(WebhookDelivery).where(
                col(WebhookDelivery.employer_id) == pair[0],
                col(WebhookDelivery.credential_id) == pair[1],
                col(WebhookDelivery.status) == "pending",
                col(WebhookDelivery.event_type) != UNSHARED,
            ).values(status="cancelled", finished_at=self.now,
                     last_error="no longer visible to this employer"))
        if self.events:  # in emission order: the feed's order within this transaction
            await conn.execute(sa.insert(EmployerEvent), self.events)
        if self.deliveries:
            await conn.execute(sa.insert(WebhookDelivery), self.deliveries)
        if self.changed:
            rows = [{"employer_id": e, "credential_id": c, "visible": self.exposures[(e, c)],
                     "changed_at": self.now} for e, c in sorted(self.changed, key=str)]
            stmt = pg_insert(Exposure).values(rows)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["employer_id", "credential_id"],
                set_={"visible": stmt.excluded.visible, "changed_at": stmt.excluded.changed_at}))
        by_columns: dict[tuple[str, ...], list[uuid.UUID]] = {}
        for cid, values in sorted(self.views.items()):
            by_columns.setdefault(tuple(sorted(values)), []).append(cid)
        for columns, cids in by_columns.items():  # one statement per batch in practice
            params: dict[str, list[Any]] = {"cid": cids}
            for c in columns:
                params["v_" + c] = [self._bind(c, cid) for cid in cids]
            await conn.execute(_update_views(columns), params)
        return bool(self.deliveries)

    def update_view(self, view: SimpleNamespace, *, source: str | None = None,
                    **values: Any) -> SimpleNamespace:
        """Apply `values` to the locked view; written once per credential by `write`.
        `source`: the JSON text of the event a new `document` came from (its `credential`
        member): the database takes the document out of it, so the ~5 KB document is not
        serialised again here."""
        for name, value in values.items():
            setattr(view, name, value)
        self.views.setdefault(view.credential_id, {}).update(values)
        if "document" in values:
            self.sources[view.credential_id] = source if source is not None else json.dumps(
                {"credential": values["document"]}, separators=(",", ":"))
        return view

    def _bind(self, column: str, cid: uuid.UUID) -> Any:
        """The value of `column` for `cid` as `_update_views` takes it."""
        if column == "document":
            return self.sources[cid]
        value = self.views[cid][column]
        return json.dumps(value, separators=(",", ":")) if column in _JSON_COLUMNS else value


async def open_batch(conn: AsyncConnection, items: list[Incoming], base_url: str,
                ) -> tuple[dict[uuid.UUID, SimpleNamespace], Effects]:
    """Lock the views of the batch's credentials (created when new) and load what their
    effects need; every event here carries credential_id, learner_key and provider_id."""
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for item in items:
        e: Any = item.event
        rows.setdefault(e.credential_id, {"credential_id": e.credential_id,
                                          "learner_key": e.learner_key,
                                          "provider_id": e.provider_id})
    views = await lock_views(conn, rows)
    return views, await Effects.load(conn, views, base_url=base_url)
