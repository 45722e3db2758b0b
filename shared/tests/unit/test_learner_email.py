"""A learner's address: checked as pydantic's EmailStr checks it, each accepted address once
per process (HTTP ingest and assessment's consumer see the same result), a refused one every
time."""

from __future__ import annotations

import uuid

import pytest
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
