"""verify_credential: each check on its own, and the overall status."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from microcred_shared.vc import keys, sign, statuslist, verify_credential
from microcred_shared.vc.controller import IssuerKey, controller_document
from microcred_testkit import vc_examples as examples


@pytest.fixture
def issuer() -> examples.ExampleIssuer:
    world = examples.ExampleIssuer()
    world.publish_lists()
    return world


async def verify(world: examples.ExampleIssuer, doc: dict, **kw):
    return await verify_credential(doc, resolve_document=world.resolve, **kw)


@pytest.mark.parametrize("suite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
async def test_a_fresh_credential_passes_every_check(issuer, suite):
    result = await verify(issuer, issuer.credential(1, suite=suite))
    assert result.verified and result.status == "valid", result.problems()
    assert set(result.checks) == {"proof", "issuer_key", "validity_window", "status", "schema"}


async def test_a_revoked_credential_is_reported_revoked(issuer):
    credential = issuer.credential(5)
    statuslist.set_bit(issuer.lists["revocation"], 5)
    issuer.publish_lists()
    result = await verify(issuer, credential)
    assert not result.verified and result.status == "revoked"
    assert result.checks["proof"].ok  # the signature itself is still fine


async def test_a_suspended_credential_is_reported_suspended(issuer):
    credential = issuer.credential(6)
    statuslist.set_bit(issuer.lists["suspension"], 6)
    issuer.publish_lists()
    assert (await verify(issuer, credential)).status == "suspended"


async def test_an_unreachable_status_list_gives_unknown_never_valid(issuer):
    credential = issuer.credential(7)
    del issuer.documents[issuer.list_url("revocation")]
    result = await verify(issuer, credential)
    assert result.status == "unknown" and result.checks["status"].ok is None
    assert not result.verified


async def test_a_status_list_with_a_forged_bit_is_not_trusted(issuer):
    credential = issuer.credential(8)
    forged = copy.deepcopy(issuer.documents[issuer.list_url("revocation")])
    forged["credentialSubject"]["encodedList"] = statuslist.encode_list(statuslist.new_list())
    forged["validFrom"] = "2026-01-02T00:00:00Z"
    issuer.documents[issuer.list_url("revocation")] = forged
    result = await verify(issuer, credential)
    assert result.status == "unknown" and "bad proof" in result.checks["status"].detail


async def test_a_status_list_signed_by_another_issuer_is_not_trusted(issuer):
    credential = issuer.credential(9)
    other = examples.ExampleIssuer("https://other.example/issuer", seed=b"\x05" * 32)
    other.publish_lists()
    issuer.documents[issuer.list_url("revocation")] = other.documents[
        other.list_url("revocation")]
    issuer.documents[other.issuer_id] = other.documents[other.issuer_id]
    assert (await verify(issuer, credential)).status == "unknown"


async def test_a_tampered_credential_is_invalid_with_a_reason(issuer):
    credential = issuer.credential(10)
    credential["credentialSubject"]["achievement"]["name"] = "Brain surgery"
    result = await verify(issuer, credential)
    assert result.status == "invalid" and "signature" in result.checks["proof"].detail


async def test_a_key_not_controlled_by_the_issuer_fails_the_issuer_key_check(issuer):
    stranger = keys.private_key_from_seed(b"\x06" * 32)
    credential = sign(examples.example_credential(issuer_id=issuer.issuer_id), stranger,
                      keys.did_key_verification_method(stranger.public_key()))
    result = await verify(issuer, credential)
    assert result.checks["proof"].ok  # did:key resolves locally, so the signature checks
    assert not result.checks["issuer_key"].ok and result.status == "invalid"


async def test_a_retired_key_still_verifies_what_it_signed_before_retirement(issuer):
    credential = issuer.credential(11)
    public = issuer.private_key.public_key()
    issuer.documents[issuer.issuer_id] = controller_document(
        issuer.issuer_id, [IssuerKey("key-1", public, expires=datetime(2027, 1, 1, tzinfo=UTC))])
    assert (await verify(issuer, credential)).checks["issuer_key"].ok
    issuer.documents[issuer.issuer_id] = controller_document(
        issuer.issuer_id, [IssuerKey("key-1", public, expires=datetime(2025, 1, 1, tzinfo=UTC))])
    result = await verify(issuer, credential)
    assert not result.checks["issuer_key"].ok and "retired" in result.checks["issuer_key"].detail


async def test_a_revoked_key_verifies_nothing(issuer):
    credential = issuer.credential(12)
    issuer.documents[issuer.issuer_id] = controller_document(issuer.issuer_id, [IssuerKey(
        "key-1", issuer.private_key.public_key(), revoked=datetime(2027, 1, 1, tzinfo=UTC))])
    assert (await verify(issuer, credential)).status == "invalid"


async def test_the_validity_window_is_checked_against_now(issuer):
    credential = issuer.credential(13, valid_until="2026-12-31T00:00:00Z")
    early = await verify(issuer, credential, now=datetime(2025, 1, 1, tzinfo=UTC))
    late = await verify(issuer, credential, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert (early.status, late.status) == ("not-yet-valid", "expired")
    assert (await verify(issuer, credential, now=datetime(2026, 7, 1, tzinfo=UTC))).verified


async def test_a_credential_breaking_the_ob_schema_fails_the_schema_check(issuer):
    doc = examples.example_credential(issuer_id=issuer.issuer_id)
    del doc["credentialSubject"]["achievement"]["criteria"]  # the schema requires it
    credential = sign(doc, issuer.private_key, issuer.verification_method, fast=False)
    result = await verify(issuer, credential)
    assert result.checks["proof"].ok and not result.checks["schema"].ok
    assert "criteria" in result.checks["schema"].detail and result.status == "invalid"


DID_ISSUER = "did:web:issuers.example.ca%3A8443:issuers:lakeshore-college"


async def test_a_did_web_issuer_is_resolved_through_its_did_document():
    world = examples.ExampleIssuer(DID_ISSUER)
    world.publish_lists()
    assert set(world.documents) == {
        "https://issuers.example.ca:8443/issuers/lakeshore-college/did.json",
        *(world.list_url(p) for p in statuslist.PURPOSES)}
    result = await verify(world, world.credential(3))
    assert result.verified and result.status == "valid", result.problems()
    assert result.checks["issuer_key"].detail == f"{DID_ISSUER}#key-1"


async def test_a_did_document_that_names_another_did_is_not_believed():
    world = examples.ExampleIssuer(DID_ISSUER)
    world.publish_lists()
    url = "https://issuers.example.ca:8443/issuers/lakeshore-college/did.json"
    world.documents[url] = {**world.documents[url], "id": "did:web:elsewhere.example"}
    result = await verify(world, world.credential(3))
    assert not result.verified
    assert "names 'did:web:elsewhere.example'" in result.checks["issuer_key"].detail


# --- what verification remembers between credentials (issue 12) ---------------------------


async def test_a_status_list_verified_once_is_checked_again_once_forged(issuer):
    """The lists' proofs are remembered by content and key: a list changed afterwards
    without a new signature is not trusted, however often the good one was seen."""
    for index in (20, 21):
        assert (await verify(issuer, issuer.credential(index))).status == "valid"
    forged = copy.deepcopy(issuer.documents[issuer.list_url("revocation")])
    bits = statuslist.new_list()
    statuslist.set_bit(bits, 22)
    forged["credentialSubject"]["encodedList"] = statuslist.encode_list(bits)
    issuer.documents[issuer.list_url("revocation")] = forged
    result = await verify(issuer, issuer.credential(22))
    assert result.status == "unknown" and "bad proof" in result.checks["status"].detail


async def test_a_status_list_verified_once_is_not_believed_after_its_key_is_revoked(issuer):
    assert (await verify(issuer, issuer.credential(30))).status == "valid"
    controller = issuer.documents[issuer.issuer_id]
    controller["verificationMethod"][0]["revoked"] = "2026-03-01T00:00:00Z"
    result = await verify(issuer, issuer.credential(31))
    assert result.status == "invalid" and not result.checks["issuer_key"].ok
    assert result.checks["status"].ok is None
    assert "not signed by the credential's issuer" in result.checks["status"].detail


async def test_a_stored_credential_is_canonicalized_once_and_a_tampered_copy_still_fails(
        issuer, monkeypatch):
    """With the JSON text a document was parsed from (a stored credential), the hash of its
    canonical form is computed once per text: other bytes, even with the same proof, are
    canonicalized afresh and fail."""
    import json

    from microcred_shared.vc import proofs

    credential = issuer.credential(21)
    text = json.dumps(credential)
    calls = []  # the credentials canonicalized (not the status lists)
    real = proofs.hash_data

    def counted(unsecured, *args, **kw):
        if "encodedList" not in str(unsecured.get("credentialSubject")):
            calls.append(unsecured.get("id"))
        return real(unsecured, *args, **kw)

    monkeypatch.setattr(proofs, "hash_data", counted)
    for _ in range(3):
        result = await verify(issuer, json.loads(text), source=text)
        assert result.verified, result.problems()
    assert len(calls) == 1
    tampered = json.loads(text)
    tampered["credentialSubject"]["name"] = "Mallory"
    result = await verify(issuer, tampered, source=json.dumps(tampered))
    assert not result.checks["proof"].ok and result.status == "invalid"
    assert len(calls) == 2


async def test_a_key_replaced_after_a_verification_is_used_by_the_next_one(issuer):
    """A signature found valid is remembered with the key it was checked against: the
    issuer's document naming another key under the same id fails the next verification,
    a key withdrawn as compromised too."""
    import json

    credential = issuer.credential(22)
    text = json.dumps(credential)
    assert (await verify(issuer, json.loads(text), source=text)).verified
    other = keys.private_key_from_seed(bytes([77] * 32)).public_key()
    issuer.documents[issuer.issuer_id] = controller_document(issuer.issuer_id,
                                                             [IssuerKey("key-1", other)])
    result = await verify(issuer, json.loads(text), source=text)
    assert not result.checks["proof"].ok and not result.verified
    issuer.documents[issuer.issuer_id] = controller_document(issuer.issuer_id, [IssuerKey(
        "key-1", issuer.private_key.public_key(), revoked=datetime(2027, 1, 1, tzinfo=UTC))])
    assert (await verify(issuer, json.loads(text), source=text)).status == "invalid"


async def test_a_stored_credentials_schema_verdict_is_reached_once_per_text(issuer, monkeypatch):
    import json

    from microcred_shared.vc import verify as verifying

    broken = issuer.credential(23)
    broken["credentialSubject"]["type"] = 7  # breaks the OB 3.0 schema (and the proof)
    text = json.dumps(broken)
    judged = []
    real = verifying.schema_problems
    monkeypatch.setattr(verifying, "schema_problems",
                        lambda doc: judged.append(1) or real(doc))
    verdicts = [(await verify(issuer, json.loads(text), source=text)).checks["schema"]
                for _ in range(3)]
    assert len(judged) == 1
    assert all(not v.ok and "credentialSubject.type" in v.detail for v in verdicts), verdicts
    fixed = json.loads(text)
    fixed["credentialSubject"]["type"] = ["AchievementSubject"]
    assert (await verify(issuer, fixed, source=json.dumps(fixed))).checks["schema"].ok
