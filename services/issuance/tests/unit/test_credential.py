"""The credential issuance builds says everything the European definition asks, in standard
Open Badges 3.0 form, and signs without a single undefined term."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microcred_issuance.issuing import credential
from microcred_shared.catalog import load_catalog
from microcred_shared.contract.events import AssessmentDecided, learner_key
from microcred_shared.settings import REPO_ROOT
from microcred_shared.vc import canon, fastcanon, proofs, schema
from microcred_testkit.backbone import learner

CATALOG = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")
BASE = "https://registry.microcred.example"


def build(definition_id: str, *, who=None, **outcome):
    d = CATALOG.definition(definition_id)
    p = CATALOG.provider(d.provider_id)
    who = who or learner("unit", language="fr")
    decision = AssessmentDecided(
        assessment_id=uuid.uuid4(), provider_id=p.id, result_id="r-1", definition_id=d.id,
        definition_version=d.version, learner=who, learner_key=learner_key(who.email),
        achieved=True, reason="ok", assessed_at=datetime(2026, 11, 3, tzinfo=UTC),
        decided_at=datetime.now(UTC), **outcome)
    return credential.build(decision=decision, definition=d, provider=p,
                            profile=credential.issuer_profile(p, BASE),
                            credential_id=uuid.uuid4(), issued_at=datetime.now(UTC),
                            base_url=BASE, status_index=131_075, salt="abcd")


CASES = [("lakeshore-data-analytics-fundamentals", {"score": 88}),
         ("cmu-sustainable-forestry", {"rubric_level": "exemplary"}),
         ("lakeshore-workplace-safety", {}),
         ("cegep-soins-premiers-secours", {"score": 90}),
         ("ocsc-site-supervisor-readiness", {})]


@pytest.mark.parametrize(("definition_id", "outcome"), CASES)
def test_every_issued_credential_validates_against_the_open_badges_schema(definition_id,
                                                                          outcome):
    doc = build(definition_id, **outcome)
    assert schema.schema_problems(doc) == []


@pytest.mark.parametrize(("definition_id", "outcome"), CASES)
def test_a_definitions_credentials_sign_the_bytes_of_the_reference_path_while_reused(
        definition_id, outcome, monkeypatch):
    # From the third credential of a definition version on, the canonical form reuses the
    # remembered walk of its achievement and issuer: the bytes signed stay pyld's.
    monkeypatch.setattr(fastcanon, "_memo", None)  # none remembered by earlier tests
    key = Ed25519PrivateKey.generate()
    for n in range(4):
        doc = build(definition_id, who=learner(f"reuse{n}"), **outcome)
        assert canon.rdfc_reference(doc) == fastcanon.rdfc_fast(doc)
        at = datetime(2026, 12, 6, tzinfo=UTC)
        signed = proofs.sign(doc, key, f"{BASE}/issuers/x#k", created=at)
        assert signed == proofs.sign(doc, key, f"{BASE}/issuers/x#k", created=at, fast=False)
    _, fragments = fastcanon.fast_parts(doc)
    assert {f.element["id"] for f in fragments} >= {
        doc["credentialSubject"]["achievement"]["id"], doc["issuer"]["id"]}


@pytest.mark.parametrize(("definition_id", "outcome"), CASES)
def test_both_cryptosuites_sign_the_credential_with_no_undefined_term(definition_id, outcome):
    doc = build(definition_id, **outcome)
    key = Ed25519PrivateKey.generate()
    for suite in ("eddsa-rdfc-2022", "eddsa-jcs-2022"):
        signed = proofs.sign(doc, key, f"{BASE}/issuers/x#k", cryptosuite=suite)
        result = proofs.verify_proof_sync(signed, lambda _vm: key.public_key())
        assert result.ok, result.reason


def test_the_credential_names_every_mandatory_element_of_the_european_approach():
    doc = build("lakeshore-data-analytics-fundamentals", score=88)
    subject, ach = doc["credentialSubject"], doc["credentialSubject"]["achievement"]
    assert subject["name"] == "Learner Nunit"                      # identification
    assert subject["identifier"][0]["identityType"] == "emailAddress"
    assert doc["name"] == ach["name"] == "Data Analytics Fundamentals"   # title
    assert doc["issuer"]["address"] == {"type": ["Address"], "addressCountry": "Canada",
                                        "addressCountryCode": "CA", "addressRegion": "CA-ON"}
    assert doc["issuer"]["name"].startswith("Lakeshore College")       # awarding body
    assert doc["validFrom"].startswith(str(datetime.now(UTC).year))     # date of issuing
    assert "Prepare a raw data set" in ach["criteria"]["narrative"]     # learning outcomes
    assert ach["notionalWorkload"] == {"hours": 45}                     # workload
    assert ach["level"] == {"framework": "Ontario Qualifications Framework",
                            "value": "Certificate II"}
    assert ach["assessmentType"] == "project-based assessment with oral defence"
    assert ach["participationForm"] == "blended"
    assert doc["qualityAssurance"]["body"] == "Ontario College Quality Assurance Service"
    assert ach["creditsAvailable"] == subject["creditsEarned"] == 3
    assert subject["result"][0]["value"] == "88"
    assert ach["alignment"][0]["targetFramework"] == "ESCO"
    assert (ach["cipCode"], ach["nocCode"]) == ("30.7001", "21223")
    assert ach["nameFr"] == "Fondements de l'analyse de données"
    assert "Résultats d'apprentissage" in ach["criteria"]["narrativeFr"]


def test_a_credential_carries_one_revocation_entry_by_default_as_ob_3_wants_it():
    doc = build("lakeshore-workplace-safety")
    entry = doc["credentialStatus"]
    assert isinstance(entry, dict) and entry["statusPurpose"] == "revocation"
    assert entry["statusListIndex"] == "3"  # 131_075 is index 3 of list 1
    assert entry["statusListCredential"].endswith("/status/lakeshore-college/revocation/1")


def test_a_suspendable_definitions_credential_points_into_both_lists():
    doc = build("ocsc-site-supervisor-readiness")
    revocation, suspension = doc["credentialStatus"]
    assert revocation["statusPurpose"] == "revocation"
    assert suspension["statusPurpose"] == "suspension"
    assert suspension["statusListIndex"] == revocation["statusListIndex"] == "3"
    assert suspension["statusListCredential"].endswith(
        "/status/ontario-construction-sector-council/suspension/1")


def raw_ob_schema_errors(doc: dict) -> list[tuple[str, str]]:
    """The OB 3.0 JSON Schema as the wallets' verifier applies it: on the document as it
    is, without our verifier's normalization of a status array into one object."""
    import json

    from jsonschema import Draft201909Validator

    path = REPO_ROOT / "shared/src/microcred_shared/vc/schema/achievementcredential.json"
    validator = Draft201909Validator(json.loads(path.read_text("utf-8")))
    return sorted(("/" + "/".join(map(str, e.path)), e.validator)
                  for e in validator.iter_errors(doc))


@pytest.mark.parametrize(("definition_id", "outcome"), CASES)
def test_only_a_suspendable_credential_breaks_the_raw_ob_schema_and_only_in_its_status(
        definition_id, outcome):
    doc = build(definition_id, **outcome)
    doc["proof"] = [{"type": "DataIntegrityProof"}]
    errors = raw_ob_schema_errors(doc)
    if CATALOG.definition(definition_id).suspendable:
        assert errors and {path for path, _ in errors} == {"/credentialStatus"}, errors
    else:
        assert errors == []


def test_the_achievement_carries_the_badge_the_registry_draws_with_a_text_alternative():
    doc = build("lakeshore-data-analytics-fundamentals", score=88)
    image = doc["credentialSubject"]["achievement"]["image"]
    assert image == {
        "id": f"{BASE}/badges/lakeshore-data-analytics-fundamentals/v1.svg", "type": "Image",
        "caption": "Badge of the micro-credential Data Analytics Fundamentals from Lakeshore "
                   "College of Applied Arts and Technology, Ontario Qualifications Framework "
                   "Certificate II"}


def test_a_definition_with_its_own_image_puts_the_providers_image_in_the_credential():
    d = CATALOG.definition("cmu-sustainable-forestry")
    own = d.model_copy(update={"image": "https://coast-mountain.example/badges/forestry.png"})
    p = CATALOG.provider(d.provider_id)
    ach = credential.achievement(own, BASE, p.name.en)
    assert ach["image"]["id"] == "https://coast-mountain.example/badges/forestry.png"
    assert ach["image"]["type"] == "Image"
    assert ach["image"]["caption"].startswith(
        "Badge of the micro-credential Sustainable Forest Management Practice from "
        "Coast Mountain University")


@pytest.mark.parametrize("bad", ["http://coast-mountain.example/b.png",
                                 "https://user:pw@coast-mountain.example/b.png",
                                 "javascript:alert(1)", "/relative.png"])
def test_a_definition_image_must_be_a_plain_https_url(bad):
    d = CATALOG.definition("cmu-sustainable-forestry").model_dump()
    with pytest.raises(ValueError, match="https URL"):
        type(CATALOG.definition("cmu-sustainable-forestry")).model_validate({**d, "image": bad})


def _build_with(d, p, n: int = 0):
    who = learner(f"cache{n}")
    decision = AssessmentDecided(
        assessment_id=uuid.uuid4(), provider_id=p.id, result_id=f"r-{n}", definition_id=d.id,
        definition_version=d.version, learner=who, learner_key=learner_key(who.email),
        achieved=True, reason="ok", assessed_at=datetime(2026, 11, 3, tzinfo=UTC),
        decided_at=datetime.now(UTC), score=88)
    return credential.build(decision=decision, definition=d, provider=p,
                            profile=credential.issuer_profile(p, BASE),
                            credential_id=uuid.uuid4(), issued_at=datetime.now(UTC),
                            base_url=BASE, status_index=7, salt="abcd")


def test_a_definitions_new_version_or_a_renamed_provider_is_not_served_from_the_old_achievement():
    # The achievement is built once per definition version and provider (issue 12); the
    # catalog projection hands a new version, or a provider changed, as a new object.
    d = CATALOG.definition("lakeshore-data-analytics-fundamentals")
    p = CATALOG.provider(d.provider_id)
    first = _build_with(d, p)["credentialSubject"]["achievement"]
    assert _build_with(d, p, 1)["credentialSubject"]["achievement"] == first
    v2 = d.model_copy(update={"version": d.version + 1, "credits": 4,
                              "title": d.title.model_copy(update={"en": "Data Analytics II"})})
    ach = _build_with(v2, p, 2)["credentialSubject"]["achievement"]
    assert ach["id"].endswith(f"/v{d.version + 1}") and ach["version"] == str(d.version + 1)
    assert (ach["name"], ach["creditsAvailable"]) == ("Data Analytics II", 4)
    assert ach["resultDescription"][0]["id"].endswith(f"/v{d.version + 1}#result")
    renamed = p.model_copy(update={"name": p.name.model_copy(update={"en": "Lakeshore Poly"})})
    assert "from Lakeshore Poly" in _build_with(d, renamed, 3)[
        "credentialSubject"]["achievement"]["image"]["caption"]
    # And the old entry still serves the old version, unchanged by the others.
    assert _build_with(d, p, 4)["credentialSubject"]["achievement"] == first


def test_credentials_sharing_an_achievement_are_signed_as_when_each_built_its_own():
    # Shared between the credentials of a version: the proofs stay those of fresh copies.
    import copy
    d = CATALOG.definition("lakeshore-data-analytics-fundamentals")
    p = CATALOG.provider(d.provider_id)
    key, at = Ed25519PrivateKey.generate(), datetime(2026, 12, 6, tzinfo=UTC)
    for n in range(4):
        doc = _build_with(d, p, n)
        fresh = {**doc, "credentialSubject": copy.deepcopy(doc["credentialSubject"])}
        assert proofs.sign(doc, key, f"{BASE}/issuers/x#k", created=at) == proofs.sign(
            fresh, key, f"{BASE}/issuers/x#k", created=at, fast=False)


def test_an_issuers_profile_is_built_once_per_provider_and_a_renamed_one_anew():
    # Shared by the credentials of an issuer (issue 12): the profile `issuer_profile` builds,
    # and a provider changed in the catalog (a new object) gets its own.
    p = CATALOG.provider("lakeshore-college")
    first = credential.profile_of(p, BASE)
    assert first == credential.issuer_profile(p, BASE)
    assert credential.profile_of(p, BASE) is first
    renamed = p.model_copy(update={"name": p.name.model_copy(update={"en": "Lakeshore Poly"})})
    assert credential.profile_of(renamed, BASE)["name"] == "Lakeshore Poly"
    assert credential.profile_of(renamed, "https://other.example")["id"].startswith(
        "did:web:other.example")
    assert credential.profile_of(p, BASE) == credential.issuer_profile(p, BASE)


@pytest.mark.parametrize("moment", [
    datetime(2026, 12, 7, 21, 54, 51, 999_999, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 1),
    datetime(2026, 6, 1, 12, 0, 0, 500_000,
             tzinfo=timezone(timedelta(hours=-4))),
])
def test_dates_are_written_to_the_second_as_before(moment):
    # The text every credential's dates had (a datetime without its microseconds), now
    # written without building that datetime.
    expected = moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert credential._iso.__wrapped__(moment) == expected
