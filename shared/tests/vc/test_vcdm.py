"""VC 2.0 issue-input checks (the refusals the W3C VC 2.0 test suite expects)."""

from __future__ import annotations

import pytest

from microcred_shared.vc import credential_problems
from microcred_testkit import vc_examples as examples

V2 = "https://www.w3.org/ns/credentials/v2"


def base() -> dict:
    return {"@context": [V2], "type": ["VerifiableCredential"], "issuer": "did:example:issuer",
            "credentialSubject": {"id": "did:example:subject"}}


def test_a_well_formed_credential_and_our_example_have_no_problems():
    assert credential_problems(base()) == []
    assert credential_problems(examples.example_credential()) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.pop("@context"), "@context is required"),
    (lambda d: d.update({"@context": ["https://schema.org/"]}), "first item"),
    (lambda d: d.update(issuanceDate="2026-01-01T00:00:00Z"), "VC 1.1 terms"),
    (lambda d: d.pop("type"), "type is required"),
    (lambda d: d.update(type=["OpenBadgeCredential"]), "VerifiableCredential"),
    (lambda d: d.update(id="not a url"), "id must be a URL"),
    (lambda d: d.update(id=["urn:a", "urn:b"]), "single URL"),
    (lambda d: d.pop("issuer"), "issuer is required"),
    (lambda d: d.update(issuer="not a url"), "issuer must be a URL"),
    (lambda d: d.update(issuer={"name": "x"}), "issuer.id is required"),
    (lambda d: d.update(issuer={"id": "https ://bad"}), "issuer.id must be a URL"),
    (lambda d: d.update(issuer={"id": "did:example:i", "name": {"@value": "x", "extra": 1}}),
     "language value object"),
    (lambda d: d.update(credentialSubject={}), "at least one claim"),
    (lambda d: d.update(credentialSubject=[{"id": "did:example:s"}, {}]), "at least one claim"),
    (lambda d: d.pop("credentialSubject"), "credentialSubject is required"),
    (lambda d: d.update(validFrom="2024-01-01"), "dateTimeStamp"),
    (lambda d: d.update(validFrom="2025-01-01T00:00:00Z", validUntil="2024-01-01T00:00:00Z"),
     "validUntil is before validFrom"),
    (lambda d: d.update(credentialStatus={"id": "https://s.example/1"}), "credentialStatus.type"),
    (lambda d: d.update(credentialStatus={"type": "X", "id": "not a url"}),
     "credentialStatus.id must be a URL"),
    (lambda d: d.update(credentialStatus="https://s.example/1"), "must be an object"),
    (lambda d: d.update(evidence=[{"name": "e"}]), "evidence[0].type"),
    (lambda d: d.update(termsOfUse={"id": "https://t.example"}), "termsOfUse.type"),
    (lambda d: d.update(refreshService={"id": "https://r.example"}), "refreshService.type"),
    (lambda d: d.update(credentialSchema={"id": "https://s.example/schema.json"}),
     "credentialSchema.type"),
    (lambda d: d.update(credentialSchema={"type": "JsonSchema"}), "credentialSchema.id"),
])
def test_inputs_vc_2_0_forbids_are_refused_with_a_reason(change, expected):
    doc = base()
    change(doc)
    problems = credential_problems(doc)
    assert any(expected in p for p in problems), problems


def test_optional_status_id_and_timezone_offsets_are_accepted():
    doc = base()
    doc["credentialStatus"] = {"type": "BitstringStatusListEntry"}
    doc["validFrom"] = "2025-01-01T00:00:00.123+05:30"
    doc["validUntil"] = "2025-01-02T00:00:00Z"
    assert credential_problems(doc) == []


def test_a_vc_1_1_credential_is_accepted_with_its_own_date_terms_checked() -> None:
    doc = base()
    doc["@context"] = ["https://www.w3.org/2018/credentials/v1"]
    doc.pop("validFrom", None)
    doc["issuanceDate"] = "2026-01-02T00:00:00Z"
    assert credential_problems(doc) == []
    doc["expirationDate"] = "2026-01-01T00:00:00Z"
    assert credential_problems(doc) == ["expirationDate is before issuanceDate"]
    doc["expirationDate"] = "soon"
    assert any("expirationDate" in p for p in credential_problems(doc))
