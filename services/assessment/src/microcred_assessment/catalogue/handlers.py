"""Operator changes to providers and definitions: the catalogue's source of truth.

Each change, in one transaction: the new state in this service's projection tables, a
ProviderPublished/DefinitionPublished event in the outbox (full current state, compacted
topics) and an audit record. An advisory lock per id serialises concurrent changes, so
versions never collide.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from microcred_assessment.access.handlers import credentials_of
from microcred_assessment.audit import handlers as audit
from microcred_assessment.catalogue import domain
from microcred_assessment.catalogue.domain import Status
from microcred_shared import outbox
from microcred_shared.catalog import Catalog, Definition, Provider
from microcred_shared.contract import topics
from microcred_shared.contract.events_providers import DefinitionPublished, ProviderPublished
from microcred_shared.problems import Problem
from microcred_shared.projection import (
    CatalogDefinition,
    CatalogProvider,
    put_definition,
    put_provider,
)

SOURCE = "/microcred/assessment"


async def _lock(conn: AsyncConnection, kind: str, ident: str) -> None:
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                       {"k": f"catalog:{kind}:{ident}"})


async def get_provider(conn: AsyncConnection, provider_id: str) -> Provider | None:
    doc = (await conn.execute(sa.select(col(CatalogProvider.doc)).where(
        col(CatalogProvider.id) == provider_id))).scalar_one_or_none()
    return Provider.model_validate(doc) if doc else None


async def latest_definition(conn: AsyncConnection, definition_id: str) -> Definition | None:
    doc = (await conn.execute(sa.select(col(CatalogDefinition.doc)).where(
        col(CatalogDefinition.id) == definition_id).order_by(
        col(CatalogDefinition.version).desc()).limit(1))).scalar_one_or_none()
    return Definition.model_validate(doc) if doc else None


async def _publish_provider(conn: AsyncConnection, provider: Provider, actor: str,
                            action: str, reason: str) -> Provider:
    await put_provider(conn, provider)
    event = ProviderPublished(provider=provider, published_at=datetime.now(UTC))
    await outbox.write(conn, [outbox.event_record(topics.PROVIDERS, event, SOURCE,
                                                  traceparent=None)])
    await audit.record(conn, channel="admin", actor=actor, provider_id=provider.id,
                       action=action, outcome="changed", reason=reason,
                       details={"version": str(provider.version)})
    return provider


async def create_provider(conn: AsyncConnection, given: Provider, actor: str) -> Provider:
    await _lock(conn, "provider", given.id)
    if await get_provider(conn, given.id):
        raise Problem(409, "Conflict", f"provider {given.id!r} exists", kind="conflict")
    provider = domain.onboarded(given)
    return await _publish_provider(conn, provider, actor, "provider.create", "onboarded")


async def update_provider(conn: AsyncConnection, given: Provider, actor: str) -> Provider:
    """Replace what the operator may edit; status changes go through set_status."""
    await _lock(conn, "provider", given.id)
    current = await _existing_provider(conn, given.id)
    provider = domain.edited(current, given)
    return await _publish_provider(conn, provider, actor, "provider.update", "updated")


async def set_status(conn: AsyncConnection, provider_id: str,
                     status: Status, reason: str,
                     actor: str) -> Provider:
    await _lock(conn, "provider", provider_id)
    current = await _existing_provider(conn, provider_id)
    if current.status == status:
        raise Problem(409, "Conflict", f"provider {provider_id!r} is already {status}",
                      kind="invalid-transition")
    provider = domain.with_status(current, status, reason)
    return await _publish_provider(conn, provider, actor, domain.status_action(status),
                                   reason)


async def _existing_provider(conn: AsyncConnection, provider_id: str) -> Provider:
    current = await get_provider(conn, provider_id)
    if current is None:
        raise Problem(404, "Not found", f"no provider {provider_id!r}", kind="not-found")
    return current


async def _check_references(conn: AsyncConnection, d: Definition) -> None:
    if await get_provider(conn, d.provider_id) is None:
        raise Problem(422, "Unknown provider", f"no provider {d.provider_id!r}",
                      kind="invalid-definition")
    for partner in sorted(d.co_issuers()):
        if await get_provider(conn, partner) is None:
            raise Problem(422, "Unknown partner", f"co-issuer {partner!r} is not a provider",
                          kind="invalid-definition")
    for component in d.stack.components if d.stack else []:
        if not domain.assessable(await latest_definition(conn, component)):
            raise Problem(422, "Unknown component", f"stack component {component!r} is not "
                          "a definition one can be assessed on", kind="invalid-definition")


async def _publish_definition(conn: AsyncConnection, d: Definition, actor: str, action: str,
                              reason: str) -> Definition:
    await put_definition(conn, d)
    event = DefinitionPublished(definition=d, published_at=datetime.now(UTC))
    await outbox.write(conn, [outbox.event_record(topics.DEFINITIONS, event, SOURCE,
                                                  traceparent=None)])
    await audit.record(conn, channel="admin", actor=actor, provider_id=d.provider_id,
                       action=action, outcome="changed", reason=reason,
                       details={"definition_id": d.id, "version": str(d.version)})
    return d


async def create_definition(conn: AsyncConnection, given: Definition, actor: str, *,
                            keep_version: bool = False) -> Definition:
    await _lock(conn, "definition", given.id)
    if await latest_definition(conn, given.id):
        raise Problem(409, "Conflict", f"definition {given.id!r} exists: publish a new "
                      "version instead", kind="conflict")
    await _check_references(conn, given)
    d = domain.first_version(given, keep_version=keep_version)
    return await _publish_definition(conn, d, actor, "definition.create", "published")


async def new_version(conn: AsyncConnection, given: Definition, actor: str) -> Definition:
    """A changed definition is a new version; credentials keep the version they were
    issued under. The owner cannot change (a definition belongs to one provider)."""
    await _lock(conn, "definition", given.id)
    current = await _existing_definition(conn, given.id)
    if given.provider_id != current.provider_id:
        raise Problem(422, "Owner cannot change", f"{given.id!r} belongs to "
                      f"{current.provider_id!r}", kind="invalid-definition")
    await _check_references(conn, given)
    d = domain.next_version(current, given)
    return await _publish_definition(conn, d, actor, "definition.version", "new version")


async def retire(conn: AsyncConnection, definition_id: str, reason: str,
                 actor: str) -> Definition:
    await _lock(conn, "definition", definition_id)
    current = await _existing_definition(conn, definition_id)
    if current.status == "retired":
        raise Problem(409, "Conflict", f"{definition_id!r} is already retired",
                      kind="invalid-transition")
    d = domain.retired(current)
    return await _publish_definition(conn, d, actor, "definition.retire", reason)


async def _existing_definition(conn: AsyncConnection, definition_id: str) -> Definition:
    current = await latest_definition(conn, definition_id)
    if current is None:
        raise Problem(404, "Not found", f"no definition {definition_id!r}", kind="not-found")
    return current


async def provider_detail(conn: AsyncConnection, provider_id: str) -> dict[str, Any]:
    """What the operator sees of a provider: its current state and its credentials."""
    provider = await _existing_provider(conn, provider_id)
    return {**provider.model_dump(mode="json"), **await credentials_of(conn, provider_id)}


async def definition_for(engine: AsyncEngine, catalog: Catalog, provider_id: str,
                         definition_id: str) -> Definition:
    """A definition as its provider may read it: its own or one it co-issues. Another
    provider's is refused (403) and audited: its existence is no secret (it is in every
    credential issued under it), its admin data is."""
    d = catalog.definition(definition_id)
    if d is None:
        raise Problem(404, "Not found", f"no definition {definition_id!r}", kind="not-found")
    if not d.may_submit(provider_id):
        await audit.record_now(engine, channel="http", actor=f"provider:{provider_id}",
                               provider_id=provider_id, action="read.foreign-definition",
                               reason=f"{definition_id!r} belongs to {d.provider_id!r}",
                               details={"definition_id": definition_id})
        raise ForeignDefinition()
    return d


class ForeignDefinition(Problem):
    """Another provider's definition: refused once its audit record committed."""

    def __init__(self) -> None:
        super().__init__(403, "Forbidden", "this definition belongs to another provider",
                         kind="forbidden")
