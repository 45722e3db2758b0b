"""The learner key: one per mailbox across providers, never one for two mailboxes."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from microcred_shared.contract.events import NAMESPACE, learner_key, normalize_email


def test_case_and_surrounding_spaces_do_not_split_a_learner():
    assert learner_key(" Ana.Silva@Example.ORG ") == learner_key("ana.silva@example.org")


def test_an_internationalised_domain_is_one_learner_in_unicode_or_punycode():
    assert learner_key("ana@École.ca") == learner_key("ana@xn--cole-9oa.ca")
    composed, decomposed = "ana@\u00e9cole.ca", "ana@e\u0301cole.ca"
    assert learner_key(composed) == learner_key(decomposed)


def test_plus_tags_and_dots_are_different_learners():
    # Only some hosts ignore them: folding would merge two people at every other host.
    assert learner_key("ana+work@example.org") != learner_key("ana@example.org")
    assert learner_key("a.na@example.org") != learner_key("ana@example.org")


def test_ascii_addresses_keep_the_keys_they_were_first_given():
    address = "Learner7@Learners.Example"
    legacy = str(uuid.uuid5(NAMESPACE, "learner:" + address.strip().lower()))
    assert learner_key(address) == legacy


@given(st.emails())
def test_two_different_normalised_addresses_never_share_a_key(address):
    other = "x" + address
    assert (normalize_email(address) == normalize_email(other)) == (
        learner_key(address) == learner_key(other))
