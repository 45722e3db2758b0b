"""Verification use cases against a real database: what cannot be fetched is a 422 problem
in words, and a stored credential is checked against the registry's own projections."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from microcred_registry.verification import handlers
from microcred_shared.problems import Problem

BASE = "https://registry.test"


async def test_a_url_that_is_not_https_is_refused_without_fetching(db: Any) -> None:
    with pytest.raises(Problem) as raised:
        await handlers.verify_url(db.engine, BASE, "http://issuers.example/c/1")
    assert (raised.value.status, raised.value.kind) == (422, "unfetchable")
    assert "only https" in raised.value.detail


async def test_one_of_our_own_urls_is_read_from_the_database_not_fetched(db: Any) -> None:
    with pytest.raises(Problem) as raised:
        await handlers.verify_url(db.engine, BASE, f"{BASE}/v1/credentials/{uuid.UUID(int=7)}")
    assert raised.value.status == 404


async def test_an_unsigned_document_does_not_verify_and_says_why(db: Any) -> None:
    result = await handlers.verify_document(db.engine, BASE, {"id": "urn:uuid:x"})
    assert result["verified"] is False and result["problems"]
