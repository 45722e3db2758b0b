"""Use cases of the issuance service: achieved assessments become signed credentials."""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_issuance import credential, status
from microcred_issuance.keystore import KeyStore, SigningKey
from microcred_issuance.models import IssuedCredential, StatusAllocation
from microcred_shared import topics
from microcred_shared.catalog import Catalog
from microcred_shared.consumer import Incoming
from microcred_shared.events import AssessmentDecided, CredentialIssued
from microcred_shared.outbox import event_record

SOURCE = "/microcred/issuance"
Signer = Callable[[dict[str, Any], SigningKey], dict[str, Any]]
ListSigner = Callable[[dict[str, Any], str], dict[str, Any]]


async def allocate(conn: AsyncConnection, provider_id: str, count: int) -> int:
    """Reserve `count` consecutive status list indexes; returns the first."""
    table = StatusAllocation.__table__
    stmt = pg_insert(table).values(provider_id=provider_id, next_index=count)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.provider_id], set_={"next_index": table.c.next_index + count}
    ).returning(table.c.next_index)
    end = (await conn.execute(stmt)).scalar_one()
    return int(end) - count


async def on_decisions(conn: AsyncConnection, items: list[Incoming], *, catalog: Catalog,
                       keys: KeyStore, sign: Signer, sign_list: ListSigner, base_url: str,
                       profiles: dict[str, dict[str, Any]]) -> dict[int, str]:
    refused: dict[int, str] = {}
    todo: list[tuple[Incoming, AssessmentDecided]] = []
    for index, item in enumerate(items):
        decision = item.event
        assert isinstance(decision, AssessmentDecided)
        if not decision.achieved:
            continue
        definition = catalog.definition(decision.definition_id)
        if definition is None or definition.provider_id != decision.provider_id:
            refused[index] = f"no definition {decision.definition_id!r} for this provider"
            continue
        todo.append((item, decision))
    if not todo:
        return refused
    # Redelivered decisions (after a crash or a replay) must not issue twice.
    known = set((await conn.execute(sa.select(IssuedCredential.assessment_id).where(
        IssuedCredential.assessment_id.in_([d.assessment_id for _, d in todo])))).scalars())
    todo = [(i, d) for i, d in todo if d.assessment_id not in known]
    by_provider: dict[str, list[tuple[Incoming, AssessmentDecided]]] = defaultdict(list)
    for pair in todo:
        by_provider[pair[1].provider_id].append(pair)
    now = datetime.now(UTC)
    rows = []
    for provider_id, pairs in by_provider.items():
        provider = catalog.provider(provider_id)
        assert provider is not None
        key = keys.active(provider_id)
        first = await allocate(conn, provider_id, len(pairs))
        lists = {i // credential.STATUS_LIST_SIZE for i in (first, first + len(pairs) - 1)}
        for purpose, list_no in await status.ensure_lists(conn, provider_id, lists):
            # A new list must be served before any credential pointing into it verifies.
            pairs[0][0].outgoing.append(await status.publish(
                conn, provider_id=provider_id, purpose=purpose, list_no=list_no,
                base_url=base_url, sign=sign_list))
        for offset, (item, decision) in enumerate(pairs):
            definition = catalog.definition(decision.definition_id)
            assert definition is not None
            # Random, not derived: a credential URL must not be guessable from a result id.
            cid = uuid.uuid4()
            doc = credential.build(
                decision=decision, definition=definition, provider=provider,
                profile=profiles[provider_id], credential_id=cid, issued_at=now,
                base_url=base_url, status_index=first + offset, salt=secrets.token_hex(8))
            signed = sign(doc, key)
            rows.append({"credential_id": cid, "assessment_id": decision.assessment_id,
                         "provider_id": provider_id, "definition_id": definition.id,
                         "definition_version": definition.version,
                         "learner_key": decision.learner_key, "key_id": key.key_id,
                         "status_index": first + offset, "issued_at": now})
            item.outgoing.append(event_record(topics.CREDENTIALS_ISSUED, CredentialIssued(
                credential_id=cid, assessment_id=decision.assessment_id,
                provider_id=provider_id, definition_id=definition.id,
                definition_version=definition.version, learner_key=decision.learner_key,
                learner_email=decision.learner.email, learner_name=decision.learner.full_name,
                learner_language=decision.learner.language, title=definition.title.en,
                issued_at=now, credential=signed,
            ), SOURCE, traceparent=item.traceparent, subject=str(cid)))
    if rows:
        await conn.execute(sa.insert(IssuedCredential), rows)
    return refused
