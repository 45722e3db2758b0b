"""An event's payload is its JSON as pydantic writes it, byte for byte: consumers store
and digest these bytes (registry keeps the credential as received)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from microcred_shared.contract.cloudevents import decode, encode, new_envelope
from microcred_shared.contract.events import CredentialIssued, CredentialRegistered

AWKWARD = ["plain", "é à ç", "中文 テスト", "emoji 😀🎓", "rtl עברית", "quote \" and \\",
           "line\nbreak\ttab", "\u2028\u2029", "\x00\x1f control", ""]


def _issued(text: str) -> CredentialIssued:
    return CredentialIssued(
        credential_id=uuid.uuid4(), assessment_id=uuid.uuid4(), provider_id="p-1",
        definition_id="d-1", definition_version=3, learner_key="k-1",
        learner_email="a@example.org", learner_name=text or "x", learner_language="fr",
        title=text, issued_at=datetime(2026, 12, 7, 21, 0, 0, 123_456, tzinfo=UTC),
        credential={"@context": ["https://www.w3.org/ns/credentials/v2"], "name": text,
                    "n": [1, 2.5, 1e300, -0.0, True, None], "nested": {"k": [text, {}]},
                    "proof": [{"proofValue": "z" + "1" * 87}]})


@pytest.mark.parametrize("text", AWKWARD)
def test_a_payload_is_the_bytes_model_dump_json_writes(text):
    event = _issued(text)
    payload = encode(event)
    assert isinstance(payload, bytes)
    assert payload == event.model_dump_json().encode()
    assert json.loads(payload)["credential"]["name"] == text


def test_a_payload_decodes_back_to_the_same_event():
    for event in (_issued("é 😀"), CredentialRegistered(
            credential_id=uuid.uuid4(), provider_id="p", learner_key="k", title="Ça 中",
            url="https://r.example/c/1", registered_at=datetime.now(UTC))):
        env = new_envelope(event, "/test")
        assert decode(env, encode(event)) == event
