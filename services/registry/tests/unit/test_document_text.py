"""Which `credentials.issued` records the registry cuts the credential's text out of itself
(wave 17), and which it leaves to PostgreSQL: the text cut is the member's, exactly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_credential_with_escapes_other_than_u_is_cut_as_written() -> None:
    """Wave 19: every credential issuance signs has a `\\n` (its narrative's lines), and
    until then any backslash sent the record the database's way: none was ever cut."""
    for credential in ({"id": "x", "criteria": {"narrative": "Outcomes:\n- one\n- two"}},
                       {"id": "x", "name": 'a "quoted" name', "path": "C:\\dir\\u"},
                       {"id": "x", "name": "tab\there", "é": "è"}):
        value = encode(issued(credential))
        text = document_text(value)
        assert text is not None and b"\\" in text
        assert value.endswith(b',"credential":' + text + b"}")
        assert json.loads(text) == credential
    # A `\\u` after an escaped backslash is text, not an escape: still cut.
    assert document_text(encode(issued({"id": "x", "name": "\\u0063"}))) is not None


def test_a_repeated_credential_spelt_with_an_escape_is_never_cut() -> None:
    value = encode(issued({"id": "x", "name": "line\nbreak"}))
    for spelling in (b"\\u0063redential", b"cr\\u0065dential", b"credentia\\u006C"):
        twice = value[:-1] + b',"' + spelling + b'":{"id":"y"}}'
        assert json.loads(twice)["credential"] == {"id": "y"}
        assert document_text(twice) is None, twice
    own = encode(issued({"id": "x", "name": "\u00e9", "note": "line\nbreak"}))
    assert b"\\u" not in own  # pydantic writes é as it is
    assert document_text(own) is not None
    escaped_own = own.replace("é".encode(), b"\\u00e9")
    assert document_text(escaped_own) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=25)


def _spelt(name: str, escaped: list[bool]) -> bytes:
    """`name` as a JSON string with the letters chosen written as `\\u` escapes."""
    return b'"' + b"".join(f"\\u{ord(c):04x}".encode() if e else c.encode()
                          for c, e in zip(name, escaped, strict=False)) + b'"'


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=12), _json, max_size=6),
       st.lists(st.booleans(), min_size=10, max_size=10),
       st.sampled_from(["none", "credential", "title"]), _json)
def test_whatever_is_cut_is_the_credential_the_parser_keeps(
        credential: dict[str, Any], escaped: list[bool], repeat: str, other: Any) -> None:
    value = encode(issued(credential))
    if repeat != "none":  # a member repeated after the credential: the last one counts
        value = value[:-1] + b"," + _spelt(repeat, escaped) + b":" + json.dumps(
            other, separators=(",", ":")).encode() + b"}"
    try:
        parsed = CredentialIssued.model_validate_json(value)
    except ValueError:
        return  # refused before the registry would look at it
    text = document_text(value)
    if text is not None:
        assert json.loads(text) == parsed.credential
        assert value.endswith(b"," + _spelt("credential", [False] * 10) + b":" + text + b"}")


def test_only_an_id_other_than_the_credentials_own_urn_is_kept_apart() -> None:
    assert custom_id(issued()) is None
    assert custom_id(issued({"id": "https://x.example/1"})) == "https://x.example/1"
    other = f"urn:uuid:{uuid.UUID(int=8)}"
    assert custom_id(issued({"id": other})) == other
    assert custom_id(issued({"id": f"urn:uuid:{str(CID).upper()}"})) == (
        f"urn:uuid:{str(CID).upper()}")
    assert custom_id(issued({"name": "no id"})) is None
