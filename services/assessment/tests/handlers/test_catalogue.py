"""Catalogue: an operator's change is one transaction: the new state, its publication on
the compacted topic and an audit record; the seed is imported once."""

from __future__ import annotations

import pytest

from microcred_assessment.catalogue import handlers as catalogue
from microcred_assessment.catalogue.seed import import_seed, load_seed
from microcred_shared.catalog import Definition, Provider
from microcred_shared.contract import topics
from microcred_shared.problems import Problem
from microcred_shared.projection import LiveCatalog
from microcred_shared.settings import REPO_ROOT
from microcred_testkit.providers import definition_doc, provider_doc

SEED = REPO_ROOT / "deploy" / "seed" / "providers.json"


async def change(kit, op, *args):
    async with kit.engine.begin() as conn:
        return await op(conn, *args)


async def test_onboarding_a_provider_publishes_it_and_audits_who_did_it(kit):
    provider = await change(kit, catalogue.create_provider,
                            Provider.model_validate(provider_doc("harbour-tech")), "operator")
    assert provider.version == 1
    [published] = await kit.outbox(topics.PROVIDERS)
    assert published.body["provider"]["id"] == "harbour-tech"
    [entry] = [e for e in await kit.audit("provider.create")
               if e["provider_id"] == "harbour-tech"]
    assert (entry["actor"], entry["outcome"], entry["provider_id"]) == (
        "operator", "changed", "harbour-tech")
    with pytest.raises(Problem) as again:
        await change(kit, catalogue.create_provider,
                     Provider.model_validate(provider_doc("harbour-tech")), "operator")
    assert again.value.status == 409


async def test_an_edit_keeps_the_status_and_a_suspension_is_a_new_version(kit):
    await change(kit, catalogue.set_status, "lakeshore-college", "suspended",
                 "accreditation under review", "operator")
    edited = await change(kit, catalogue.update_provider, Provider.model_validate(
        {**provider_doc("lakeshore-college"), "status": "active"}), "operator")
    assert edited.status == "suspended" and edited.version == 3
    assert edited.status_reason == "accreditation under review"
    with pytest.raises(Problem) as twice:
        await change(kit, catalogue.set_status, "lakeshore-college", "suspended", "again",
                     "operator")
    assert twice.value.status == 409
    versions = [p.body["provider"]["version"] for p in await kit.outbox(topics.PROVIDERS)]
    assert versions == [2, 3]


async def test_a_definition_gets_new_versions_keeps_its_owner_and_retires_once(kit):
    doc = definition_doc("lakeshore-forklift", "lakeshore-college", min_score=60)
    first = await change(kit, catalogue.create_definition, Definition.model_validate(doc),
                         "operator")
    second = await change(kit, catalogue.new_version, Definition.model_validate(
        {**doc, "title": {"en": "Forklift II", "fr": "Chariot II"}}), "operator")
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(Problem, match="belongs to 'lakeshore-college'"):
        await change(kit, catalogue.new_version, Definition.model_validate(
            {**doc, "provider_id": "coast-mountain-university"}), "operator")
    retired = await change(kit, catalogue.retire, "lakeshore-forklift", "replaced",
                           "operator")
    assert retired.status == "retired"
    with pytest.raises(Problem) as again:
        await change(kit, catalogue.retire, "lakeshore-forklift", "replaced", "operator")
    assert again.value.status == 409
    published = [(p.body["definition"]["version"], p.body["definition"]["status"])
                 for p in await kit.outbox(topics.DEFINITIONS)]
    assert published == [(1, "active"), (2, "active"), (2, "retired")]


async def test_suspension_is_off_unless_a_definition_asks_for_it_and_travels_with_it(kit):
    """ADR 8: suspendable is opt-in per definition; the published definition carries it to
    issuance, which gives its credentials a suspension entry only then."""
    plain = await change(kit, catalogue.create_definition, Definition.model_validate(
        definition_doc("lakeshore-course", "lakeshore-college")), "operator")
    licence = await change(kit, catalogue.create_definition, Definition.model_validate(
        {**definition_doc("lakeshore-licence", "lakeshore-college"), "suspendable": True}),
        "operator")
    assert (plain.suspendable, licence.suspendable) == (False, True)
    published = {p.body["definition"]["id"]: p.body["definition"]
                 for p in await kit.outbox(topics.DEFINITIONS)}
    assert published["lakeshore-course"]["suspendable"] is False
    assert published["lakeshore-licence"]["suspendable"] is True
    with pytest.raises(ValueError, match="suspendable"):
        Definition.model_validate({**definition_doc("x-bad", "lakeshore-college"),
                                   "suspendable": "sometimes"})


async def test_a_definition_naming_an_unknown_co_issuer_or_component_is_refused(kit):
    with pytest.raises(Problem, match="co-issuer 'nobody' is not a provider"):
        await change(kit, catalogue.create_definition, Definition.model_validate(
            definition_doc("x-1", "lakeshore-college", co_issuers=("nobody",))), "operator")
    stack = {"components": ["lakeshore-workplace-safety", "ocsc-digital-skills-construction"
                            "-supervisors"]}
    with pytest.raises(Problem, match="is not a definition one can be assessed on"):
        await change(kit, catalogue.create_definition, Definition.model_validate(
            definition_doc("x-2", "lakeshore-college", stack=stack)), "operator")
    assert await kit.outbox(topics.DEFINITIONS) == []


async def test_the_seed_is_imported_once_and_later_entries_only_are_added(kit):
    assert await import_seed(kit.engine, load_seed(SEED)) == 0  # the fixture imported it
    catalog = LiveCatalog(kit.engine)
    await catalog.refresh(force=True)
    assert catalog.current.provider("lakeshore-college") is not None
    assert len(catalog.current.definitions) == 6


async def test_a_provider_sees_its_own_definitions_and_reading_anothers_is_audited(kit):
    catalog = LiveCatalog(kit.engine)
    await catalog.refresh(force=True)
    own = await catalogue.definition_for(kit.engine, catalog.current, "lakeshore-college",
                                         "lakeshore-workplace-safety")
    assert own.provider_id == "lakeshore-college"
    with pytest.raises(catalogue.ForeignDefinition):
        await catalogue.definition_for(kit.engine, catalog.current, "lakeshore-college",
                                       "cmu-sustainable-forestry")
    [entry] = await kit.audit("read.foreign-definition")
    assert entry["actor"] == "provider:lakeshore-college"
    assert "belongs to 'coast-mountain-university'" in entry["reason"]
