"""A learner's address: checked as pydantic's EmailStr checks it, each accepted address once
per process (HTTP ingest and assessment's consumer see the same result), a refused one every
time."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from microcred_shared.contract.events import Learner, _checked_email


def learner(email: str) -> Learner:
    return Learner(id="l-1", email=email, given_name="Ann", family_name="Lee")


def test_an_address_is_normalised_as_before_and_checked_once() -> None:
    address = f"Ann.{uuid.uuid4().hex[:8]}@Example.COM"
    before = _checked_email.cache_info()
    assert learner(address).email == address.replace("Example.COM", "example.com")
    assert learner(address).email == address.replace("Example.COM", "example.com")
    after = _checked_email.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


@pytest.mark.parametrize("bad", ["no-at-sign", "a@b", "x@@example.com", "a b@example.com"])
def test_a_refused_address_is_refused_every_time_with_the_reason(bad: str) -> None:
    for _ in range(2):
        with pytest.raises(ValidationError, match="value is not a valid email address"):
            learner(bad)


def test_the_published_schema_still_says_email() -> None:
    field = Learner.model_json_schema()["properties"]["email"]
    assert (field["type"], field["format"]) == ("string", "email")


# The address check takes a short cut for plain addresses (the domain's verdict is
# remembered): it must answer exactly what pydantic's validate_email answers, address by
# address, accepted or refused.
def _both(address: str) -> tuple[str, str]:
    from pydantic.networks import validate_email

    from microcred_shared.contract.events import _validated_email

    def answer(check: Any) -> str:
        try:
            return "ok " + check(address)
        except ValueError as exc:
            return "refused " + str(exc)

    return answer(_validated_email), answer(lambda a: validate_email(a)[1])


EDGES = ["Ann.Lee@Example.COM", "ann@example.com", "a+tag@sub.example.ca", "a_b-c@x-y.ca",
         "Postmaster@example.com", "INFO@example.com", "x@xn--cole-9oa.ca", "x@XN--COLE-9OA.CA",
         "a@b", "a@localhost", "a@x.test", "a@x.local", "a@x.invalid", "a@x.onion",
         "a@x.example", "a@123.45", "a@x.123", "a@-x.ca", "a@x-.ca", "a@x..ca", "a@.x.ca",
         "a@x.ca.", "a..b@x.ca", ".a@x.ca", "a.@x.ca", "a@ab--cd.ca", "a@xn--zz.ca",
         "a@exa_mple.com", "a" * 64 + "@x.ca", "a" * 65 + "@x.ca",
         "a" * 60 + "@" + ".".join(["b" * 63] * 3) + ".ca",
         "a@" + ".".join(["b" * 62] * 4) + ".ca", "a@" + "b" * 64 + ".ca",
         "a" * 243 + "@example.ca", "a" * 244 + "@example.ca", "a" * 245 + "@example.ca"]


@pytest.mark.parametrize("address", EDGES)
def test_a_plain_address_gets_exactly_the_validators_answer(address: str) -> None:
    mine, theirs = _both(address)
    assert mine == theirs


@settings(max_examples=400, deadline=None)
@given(local=st.from_regex(r"[A-Za-z0-9_+.-]{1,70}", fullmatch=True),
       domain=st.from_regex(r"[A-Za-z0-9.-]{1,30}(\.(ca|com|test|local|org|[a-z0-9-]{1,6}))?",
                            fullmatch=True))
def test_any_address_of_the_plain_alphabet_gets_exactly_the_validators_answer(
        local: str, domain: str) -> None:
    mine, theirs = _both(f"{local}@{domain}")
    assert mine == theirs


def test_the_short_cut_knows_every_mailbox_name_the_validator_lower_cases() -> None:
    # An email_validator upgrade that adds one must not slip past the short cut.
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

    from microcred_shared.contract.events import _ROLE_MAILBOXES

    assert _ROLE_MAILBOXES == set(CASE_INSENSITIVE_MAILBOX_NAMES)
