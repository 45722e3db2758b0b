"""A credential's announcement is the event's JSON byte for byte, also when its shared
achievement's JSON is written once per definition version and put in place."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from microcred_issuance.issuing import announce, credential
from microcred_shared.catalog import load_catalog
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, header_map
from microcred_shared.contract.events import AssessmentDecided, CredentialIssued, learner_key
from microcred_shared.settings import REPO_ROOT
from microcred_shared.vc import proofs
from microcred_testkit.backbone import learner

CATALOG = load_catalog(REPO_ROOT / "deploy" / "seed" / "providers.json")
BASE = "https://registry.microcred.example"
KEY = Ed25519PrivateKey.generate()
NAMES = ["Ada Lovelace", "Zoë Ça va", "李小龙", "Émile 😀 O'Brien \"Q\"", "עברית \\ tab\t"]


def _signed(definition_id: str, name: str, n: int) -> tuple[dict, AssessmentDecided]:
    d = CATALOG.definition(definition_id)
    p = CATALOG.provider(d.provider_id)
    who = learner(f"ann{n}").model_copy(update={"display_name": name})
    outcome = ({"score": d.pass_rule.max_score} if d.pass_rule.kind == "score" else
               {"rubric_level": d.pass_rule.levels[-1]} if d.pass_rule.kind == "rubric" else {})
    decision = AssessmentDecided(
        assessment_id=uuid.uuid4(), provider_id=p.id, result_id=f"r-{n}", definition_id=d.id,
        definition_version=d.version, learner=who, learner_key=learner_key(who.email),
        achieved=True, reason="ok", assessed_at=datetime.now(UTC),
        decided_at=datetime.now(UTC), **outcome)
    doc = credential.build(decision=decision, definition=d, provider=p,
                           profile=credential.profile_of(p, BASE), credential_id=uuid.uuid4(),
                           issued_at=datetime.now(UTC), base_url=BASE, status_index=n,
                           salt="abcd")
    return proofs.sign(doc, KEY, f"{BASE}/issuers/{p.id}#k"), decision


def _fields(signed: dict, decision: AssessmentDecided) -> dict:
    who = decision.learner
    return {"credential_id": uuid.UUID(signed["id"].removeprefix("urn:uuid:")),
            "assessment_id": decision.assessment_id, "provider_id": decision.provider_id,
            "definition_id": decision.definition_id,
            "definition_version": decision.definition_version,
            "learner_key": decision.learner_key, "learner_email": who.email,
            "learner_name": who.full_name, "learner_language": who.language,
            "title": signed["name"], "issued_at": datetime.now(UTC)}


@pytest.mark.parametrize("definition_id", [d.id for d in CATALOG.definitions
                                           if d.pass_rule is not None])
def test_the_announcement_is_the_events_json_byte_for_byte(definition_id):
    for n, name in enumerate(NAMES):
        signed, decision = _signed(definition_id, name, n)
        # The achievement is the shared one, so its JSON is put in place.
        assert credential.shared_achievement_json(
            signed["credentialSubject"]["achievement"]) is not None
        fields = _fields(signed, decision)
        out = announce.record(**fields, signed=signed, traceparent=None)
        event = CredentialIssued(**fields, credential=signed)
        assert out.payload == encode(event) == event.model_dump_json().encode()
        assert CredentialIssued.model_validate_json(out.payload) == event
        assert (out.topic, out.key) == (topics.CREDENTIALS_ISSUED, decision.learner_key.encode())
        headers = header_map(out.headers)
        assert headers["ce_type"] == CredentialIssued.ce_type
        assert headers["ce_subject"] == str(fields["credential_id"])


def test_a_credential_without_a_shared_achievement_is_written_whole():
    signed, decision = _signed("lakeshore-data-analytics-fundamentals", "Ada", 0)
    own = {**signed, "credentialSubject": {
        **signed["credentialSubject"],
        "achievement": dict(signed["credentialSubject"]["achievement"], name="Another")}}
    assert credential.shared_achievement_json(own["credentialSubject"]["achievement"]) is None
    fields = _fields(own, decision)
    out = announce.record(**fields, signed=own, traceparent="00-" + "a" * 32 + "-" + "b" * 16
                          + "-01")
    assert out.payload == encode(CredentialIssued(**fields, credential=own))
    assert json.loads(out.payload)["credential"]["credentialSubject"]["achievement"][
        "name"] == "Another"
    assert header_map(out.headers)["traceparent"].startswith("00-aaaa")


def test_a_value_equal_to_the_placeholder_does_not_change_the_bytes():
    # Unguessable, and a signed credential cannot hold it (signing refuses U+0000); were it
    # in one of the event's own fields, the payload is written whole all the same.
    signed, decision = _signed("cmu-sustainable-forestry", "Ada", 0)
    fields = _fields(signed, decision) | {"learner_name": announce._PLACEHOLDER}
    out = announce.record(**fields, signed=signed, traceparent=None)
    assert out.payload == encode(CredentialIssued(**fields, credential=signed))
    assert out.payload.count(b"microcred-achievement-") == 1  # the name, not the achievement
    assert json.loads(out.payload)["credential"]["credentialSubject"]["achievement"] == \
        signed["credentialSubject"]["achievement"]
