"""Who may submit a result for a definition: the owner and its co-issuers, while active."""

from __future__ import annotations

import pytest

from microcred_assessment.results.domain import InvalidResult, Refused, authorize
from microcred_shared.catalog import Catalog, Definition, Provider
from microcred_testkit.backbone import result
from microcred_testkit.providers import definition_doc, provider_doc


def catalog(*, suspended: str | None = None) -> Catalog:
    providers = [Provider.model_validate(provider_doc(p) | (
        {"status": "suspended", "status_reason": "audit"} if p == suspended else {}))
        for p in ("owner", "partner", "endorser", "stranger")]
    doc = definition_doc("shared-def", "owner", co_issuers=("partner",))
    doc["partners"].append({"role": "endorser", "provider_id": "endorser",
                            "name": {"en": "Endorser"}})
    stack = definition_doc("the-stack", "owner", stack={"components": ["shared-def", "x-def"]})
    return Catalog.of(providers, [Definition.model_validate(doc),
                                  Definition.model_validate(stack)])


def test_the_owner_and_a_co_issuer_may_submit_but_an_endorser_or_stranger_may_not():
    c = catalog()
    assert authorize(result("owner", "shared-def", passed=True), "owner", c).id == "shared-def"
    assert authorize(result("partner", "shared-def", passed=True), "partner", c)
    for other in ("endorser", "stranger"):
        with pytest.raises(Refused, match="not co-issued"):
            authorize(result(other, "shared-def", passed=True), other, c)


def test_a_suspended_provider_is_refused_with_the_reason():
    with pytest.raises(Refused, match="suspended: audit") as refused:
        authorize(result("partner", "shared-def", passed=True), "partner",
                  catalog(suspended="partner"))
    assert refused.value.status == 403


def test_a_result_naming_another_provider_than_the_sender_is_forged():
    with pytest.raises(Refused, match="may not publish") as refused:
        authorize(result("owner", "shared-def", passed=True), "partner", catalog())
    assert refused.value.action == "result.forged-provider"


def test_a_stack_is_awarded_never_assessed():
    with pytest.raises(InvalidResult, match="is a stack"):
        authorize(result("owner", "the-stack", passed=True), "owner", catalog())
