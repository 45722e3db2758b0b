"""Which `credentials.issued` records the registry cuts the credential's text out of itself
(wave 17), and which it leaves to PostgreSQL: the text cut is the member's, exactly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from microcred_registry.credentials.domain import custom_id, document_text
from microcred_shared.contract.cloudevents import encode
from microcred_shared.contract.events import CredentialIssued

CID = uuid.UUID("c0ffee00-0000-4000-8000-0000000000ab")


def issued(credential: dict[str, Any] | None = None, **fields: Any) -> CredentialIssued:
    return CredentialIssued(**{
        "credential_id": CID, "provider_id": "lakeshore", "learner_key": "k", "title": "Data",
        "issued_at": datetime(2026, 7, 1, tzinfo=UTC),
        "credential": credential or {"id": f"urn:uuid:{CID}", "name": "Data", "n": [1, 2]},
        **fields})


def test_a_record_as_issuance_writes_it_gives_its_credentials_text_exactly() -> None:
    event = issued()
    text = document_text(encode(event))
    assert text is not None and json.loads(text) == event.credential
    assert encode(event).endswith(b',"credential":' + text + b"}")


def test_records_that_cannot_be_cut_safely_are_left_to_the_database() -> None:
    nested = issued({"id": "x", "evidence": [{"credential": {"name": "n"}}]})
    escaped = issued({"id": "x", "name": "bell \x07"})
    braced = issued(title="Data {analysis}")
    bracketed = issued(title="Data [analysis]")
    spaced = json.dumps(json.loads(encode(issued())), indent=1).encode()
    twice = encode(issued())[:-1] + b',"credential":{"id":"y"}}'
    escaped_twice = encode(issued())[:-1] + b',"\\u0063redential":{"id":"y"}}'
    scalar_after = encode(issued())[:-1] + b',"title":"Other"}'
    for value in (encode(nested), encode(escaped), encode(braced), encode(bracketed), spaced,
                  twice, escaped_twice, scalar_after, b"", b"{}", b'{"credential":{}}'):
        assert document_text(value) is None, value


def test_only_an_id_other_than_the_credentials_own_urn_is_kept_apart() -> None:
    assert custom_id(issued()) is None
    assert custom_id(issued({"id": "https://x.example/1"})) == "https://x.example/1"
    other = f"urn:uuid:{uuid.UUID(int=8)}"
    assert custom_id(issued({"id": other})) == other
    assert custom_id(issued({"id": f"urn:uuid:{str(CID).upper()}"})) == (
        f"urn:uuid:{str(CID).upper()}")
    assert custom_id(issued({"name": "no id"})) is None
