"""The employer feed's Kafka batch handlers: keep the projection of credentials up to date
and turn each change an employer may see into employer events, in the same transaction.

- credential visibility: the holder's choice; employers gain or lose the credential
  (`credential.shared` / `credential.unshared`), and what was on its way is cancelled. A
  choice that lets some employer see the credential carries its signed document: a view
  holds a document only from then on (ADR 10);
- credentials.issued, only while `MICROCRED_EMPLOYER_FEED_READS_ISSUED` is set (upgrading
  from a registry whose visibility events carry no document, ADR 10): the signed document
  arrives with the credential; employers it is visible to and that subscribe to it are told
  `credential.shared`;
- credential status: employers that hold the credential are told of a revocation or a
  suspension (`credential.status.changed`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_notify.employer_feed.domain import STATUS_CHANGED, facts_of, targets
from microcred_notify.employer_feed.projection import (
    insert_new_views,
    open_batch,
    view_facts,
)
from microcred_shared.consumer import Incoming
from microcred_shared.contract.events import CredentialIssued, CredentialStatusChanged
from microcred_shared.contract.events_learners import CredentialVisibilityChanged


def _payload(item: Incoming) -> str | None:
    """The record's JSON as it came (already parsed into `item.event`): the view's document
    is taken from it by the database instead of serialising the credential once more."""
    value = item.record.value
    return None if value is None else bytes(value).decode()


_MEMBER = ',"credential":'


def document_text(payload: str, event: CredentialIssued) -> str | None:
    """The `credential` member's JSON text cut out of the event's text, when the event is
    written as issuance writes it (`cloudevents.encode`: compact, its fields in order, the
    credential last); None otherwise (the database then takes the member out of the whole
    event). The view's insert so parses ~4 KB once, to check it, instead of the ~5 KB
    event twice (to check it, then to find the member): issue 12, wave 16.

    Safe because the record was already parsed (`event`): what precedes the member is
    exactly the other fields as parsed, and the rest is one JSON value ending the object,
    unless the event repeats a key after it. A repeated scalar field would end the rest
    with something other than a brace; a repeated `credential`, spelt plainly or with
    escapes, would put that name or a `\\u` escape in the rest: each of those takes the
    whole-event path (where, as for the parser, the last of repeated keys counts)."""
    head = event.model_dump_json(exclude={"credential"})
    start = len(head) - 1 + len(_MEMBER)
    if not (payload.endswith("}") and payload.startswith(_MEMBER, len(head) - 1)
            and payload.startswith(head[:-1])):
        return None
    text = payload[start:-1]
    if not text.endswith("}") or '"credential"' in text or "\\u" in text:
        return None
    return text


async def on_issued(conn: AsyncConnection, items: list[Incoming], *, base_url: str,
                    owe: Callable[[], None] = lambda: None) -> dict[int, str]:
    """A credential seen for the first time gets its view in one insert: private, it is
    nobody's yet. One already known (its holder's choice or its status came first, or a
    redelivery under another ce_id) is locked and reconciled."""
    first: dict[uuid.UUID, dict[str, Any]] = {}
    for item in items:
        e = item.event
        assert isinstance(e, CredentialIssued)
        if e.credential_id not in first:
            facts = facts_of(e.credential, e.provider_id, e.definition_id)
            source = _payload(item)
            document = None if source is None else document_text(source, e)
            first[e.credential_id] = {
                "credential_id": e.credential_id, "learner_key": e.learner_key,
                "provider_id": e.provider_id, "definition_id": e.definition_id,
                "jurisdiction": facts.jurisdiction,
                "skills": json.dumps(sorted(facts.skills), separators=(",", ":")),
                # The member's text when it can be cut out (nearly always), else the event.
                "document": document,
                "source": None if document is not None else source or json.dumps(
                    {"credential": e.credential}, separators=(",", ":"))}
    written = await insert_new_views(conn, list(first.values()))
    known = [item for item in items
             if cast(CredentialIssued, item.event).credential_id not in written]
    if known:
        await _reconcile_issued(conn, known, base_url, owe)
    return {}


async def _reconcile_issued(conn: AsyncConnection, items: list[Incoming], base_url: str,
                            owe: Callable[[], None]) -> None:
    views, fx = await open_batch(conn, items, base_url)
    for item in items:
        e = item.event
        assert isinstance(e, CredentialIssued)
        if views[e.credential_id].document is not None:
            continue  # a redelivery under another ce_id: already known
        facts = facts_of(e.credential, e.provider_id, e.definition_id)
        views[e.credential_id] = fx.update_view(
            views[e.credential_id], source=_payload(item), document=e.credential,
            learner_key=e.learner_key,
            provider_id=e.provider_id, definition_id=e.definition_id,
            jurisdiction=facts.jurisdiction, skills=sorted(facts.skills))
        fx.reconcile(views[e.credential_id])
    if await fx.write(conn):
        owe()  # webhook deliveries are due once this commits


async def on_visibility(conn: AsyncConnection, items: list[Incoming], *, base_url: str,
                        owe: Callable[[], None] = lambda: None) -> dict[int, str]:
    """Each change is applied in order, and each one the employer can see is an event. A
    change that lets some employer see the credential carries its signed document (the
    registry adds it, ADR 10): the view takes it, with the facts filters match on, the
    first time. A change without it (private or link, or from a registry before issue 12
    wave 17) uses the document the view already has, if any."""
    views, fx = await open_batch(conn, items, base_url)
    refused: dict[int, str] = {}
    for index, item in enumerate(items):
        e = item.event
        assert isinstance(e, CredentialVisibilityChanged)
        old = views[e.credential_id]
        if old.learner_key != e.learner_key:
            refused[index] = "the credential belongs to another learner"
            continue
        if e.credential is not None and old.document is None:
            facts = facts_of(e.credential, e.provider_id, e.definition_id)
            fx.update_view(old, source=_payload(item), document=e.credential,
                           definition_id=e.definition_id, jurisdiction=facts.jurisdiction,
                           skills=sorted(facts.skills))
            if old.visibility_changed_at and e.changed_at < old.visibility_changed_at:
                fx.reconcile(old)  # the newer choice, known before the document, now holds
                continue
        if old.visibility_changed_at and e.changed_at < old.visibility_changed_at:
            continue  # an older choice arriving late never overrides a newer one
        before = list(old.shared_with)  # update_view changes the locked view in place
        fx.reconcile(fx.update_view(old, visibility=e.visibility,
                                    shared_with=sorted(set(e.shared_with)),
                                    visibility_changed_at=e.changed_at),
                     previously_shared_with=before)
    if await fx.write(conn):
        owe()  # webhook deliveries are due once this commits
    return refused


async def on_status_changed(conn: AsyncConnection, items: list[Incoming], *,
                            base_url: str, owe: Callable[[], None] = lambda: None
                            ) -> dict[int, str]:
    """Revocations and suspensions reach the employers that hold the credential."""
    views, fx = await open_batch(conn, items, base_url)
    for item in items:
        e = item.event
        assert isinstance(e, CredentialStatusChanged)
        view = views[e.credential_id] = fx.update_view(views[e.credential_id], status=e.status)
        if view.document is None:
            continue
        facts = view_facts(view)
        for employer_id in sorted(fx.exposed(e.credential_id)):
            fx.emit(employer_id, view, STATUS_CHANGED,
                    targets(fx.subs, employer_id, facts,
                            employer_id in view.shared_with),
                    {"action": e.action, "reason": e.reason,
                     "changed_at": e.changed_at.isoformat()})
    if await fx.write(conn):
        owe()  # webhook deliveries are due once this commits
    return {}
