"""When a learner's components complete a stack, and what the stacked credential says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microcred_issuance.issuing import credential
from microcred_issuance.stacks.domain import Held, completion
from microcred_shared.catalog import StackSpec, load_catalog
from microcred_shared.settings import REPO_ROOT
from microcred_shared.vc import proofs, schema
from microcred_testkit.backbone import learner

CATALOG = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")
BASE = "https://registry.microcred.example"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def held(definition_id: str, days: int = 0) -> Held:
    return Held(uuid.uuid4(), definition_id, T0 + timedelta(days=days))


def test_an_all_of_stack_completes_only_when_every_component_is_held():
    spec = StackSpec(rule="all_of", components=["a", "b", "c"])
    assert completion(spec, [held("a"), held("b")]) is None
    parts = completion(spec, [held("c"), held("a"), held("b"), held("x")])
    assert parts is not None and [p.definition_id for p in parts] == ["a", "b", "c"]


def test_a_k_of_n_stack_completes_with_any_k_distinct_components():
    spec = StackSpec(rule="k_of_n", k=2, components=["a", "b", "c"])
    assert completion(spec, [held("a"), held("a", 3)]) is None
    assert completion(spec, [held("a"), held("c", 3)]) is not None


def test_a_window_needs_the_components_issued_within_n_days_of_each_other():
    spec = StackSpec(components=["a", "b"], window_days=30)
    assert completion(spec, [held("a", 0), held("b", 31)]) is None
    # A later credential of the same definition brings both inside one window.
    parts = completion(spec, [held("a", 0), held("b", 31), held("a", 40)])
    assert parts is not None and {p.issued_at for p in parts} == {T0 + timedelta(days=31),
                                                                   T0 + timedelta(days=40)}


def test_the_latest_credential_of_a_definition_is_the_one_referenced():
    spec = StackSpec(components=["a", "b"])
    old, new = held("a", 0), held("a", 5)
    parts = completion(spec, [old, new, held("b", 1)])
    assert parts is not None and new in parts and old not in parts


def stacked() -> dict:
    d = CATALOG.definition("ocsc-digital-skills-construction-supervisors")
    owner = CATALOG.provider(d.provider_id)
    components = [f"{BASE}/v1/credentials/{uuid.uuid4()}" for _ in range(2)]
    return credential.build_stack(
        definition=d, provider=owner, profile=credential.issuer_profile(owner, BASE),
        credential_id=uuid.uuid4(), issued_at=datetime.now(UTC), base_url=BASE,
        status_index=7, salt="abcd", learner=learner("stack"), components=components,
        completed_at=datetime.now(UTC))


def test_the_stacked_credential_is_issued_by_the_stack_owner_and_lists_its_components():
    doc = stacked()
    assert doc["issuer"]["id"] == (
        "did:web:registry.microcred.example:issuers:ontario-construction-sector-council")
    assert len(doc["components"]) == 2 and all("/v1/credentials/" in c
                                               for c in doc["components"])
    partners = doc["credentialSubject"]["achievement"]["partners"]
    assert partners[0]["id"] == "did:web:registry.microcred.example:issuers:lakeshore-college"
    assert partners[0]["role"] == "co-issuer"
    assert schema.schema_problems(doc) == []


def test_the_stacked_credential_signs_with_no_undefined_term():
    key = Ed25519PrivateKey.generate()
    for suite in ("eddsa-rdfc-2022", "eddsa-jcs-2022"):
        signed = proofs.sign(stacked(), key, f"{BASE}/issuers/x#k", cryptosuite=suite)
        assert proofs.verify_proof_sync(signed, lambda _vm: key.public_key()).ok
