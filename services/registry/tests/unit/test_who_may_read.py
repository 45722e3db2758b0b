"""Who may read a credential by its id (ADR 9): one rule for its JSON, its page, its
verification and its QR code. Pure: wallet.domain.may_read."""

from __future__ import annotations

import pytest

from microcred_registry.wallet.domain import ANYONE, VISIBILITIES, Viewer, may_read

HOLDER, ISSUER = "learner-ada", "lakeshore"
HOLDER_V, ISSUER_V, OPERATOR = Viewer(learner_key=HOLDER), Viewer(provider_id=ISSUER), \
    Viewer(operator=True)
SHARED, OTHER = Viewer(employer_id="acme"), Viewer(employer_id="globex")


def reads(viewer: Viewer, visibility: str, shared_with: tuple[str, ...] = ()) -> bool:
    return may_read(viewer, holder=HOLDER, issuer=ISSUER, visibility=visibility,
                    shared_with=list(shared_with))


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_the_holder_the_issuer_and_the_operator_always_read(visibility: str) -> None:
    assert reads(HOLDER_V, visibility) and reads(ISSUER_V, visibility)
    assert reads(OPERATOR, visibility)


@pytest.mark.parametrize("visibility", ["private", "link", "employers"])
def test_anyone_else_reads_nothing_until_it_is_public(visibility: str) -> None:
    for stranger in (ANYONE, Viewer(learner_key="learner-bo"),
                     Viewer(provider_id="coast-mountain")):
        assert not reads(stranger, visibility)
    assert reads(ANYONE, "public")


def test_a_share_link_opens_nothing_by_id() -> None:
    # `link` lets a link's holder read at /c/{token}; by the id it is as private.
    assert not reads(ANYONE, "link")


def test_an_employer_reads_while_shared_with_it_or_open_to_employers() -> None:
    assert reads(SHARED, "private", ("acme",)) and reads(SHARED, "link", ("acme",))
    assert not reads(OTHER, "private", ("acme",))
    assert not reads(SHARED, "private") and not reads(SHARED, "link")  # unshared
    assert reads(OTHER, "employers") and reads(OTHER, "public")
