"""The employer feed's pure rules: privacy, filters, transitions, retries, rate limits,
cursors, endpoint URLs and Standard Webhooks signatures."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from cryptography.exceptions import InvalidTag
from standardwebhooks.webhooks import Webhook

from microcred_notify.employer_feed import crypto as webhook_crypto
from microcred_notify.employer_feed.domain import (
    SHARED,
    UNSHARED,
    Facts,
    Filters,
    Sub,
    decode_cursor,
    encode_cursor,
    facts_of,
    matches,
    retry_delay,
    should_disable,
    take_tokens,
    transitions,
    visible_to,
    webhook_url_problem,
)
from microcred_notify.employer_feed.projection import Effects

ONTARIO_DATA = Facts("lakeshore-college", "lakeshore-data", "CA-ON",
                     frozenset({"analyse data", "esco", "numeracy"}))


def sub(employer: str, **filters: list[str]) -> Sub:
    return Sub(uuid.uuid4(), employer, Filters(**filters), webhook=True, webhook_active=True)


def test_only_public_employer_visible_or_directly_shared_credentials_are_visible() -> None:
    assert visible_to("e1", "public", []) and visible_to("e1", "employers", [])
    assert visible_to("e1", "private", ["e1"]) and visible_to("e1", "link", ["e1"])
    assert not visible_to("e1", "private", []) and not visible_to("e1", "link", ["e2"])


def test_filters_and_across_dimensions_or_within_and_empty_means_everything() -> None:
    assert matches(Filters(), ONTARIO_DATA)
    assert matches(Filters(jurisdictions=["CA-BC", "CA-ON"], skills=["Numeracy"]), ONTARIO_DATA)
    assert not matches(Filters(jurisdictions=["CA-ON"], provider_ids=["other"]), ONTARIO_DATA)
    assert matches(Filters(skills=["ESCO"]), ONTARIO_DATA)  # a framework matches too
    assert not matches(Filters(definition_ids=["x"]), ONTARIO_DATA)


def test_a_jurisdiction_filter_must_be_iso_3166_2() -> None:
    with pytest.raises(ValueError):
        Filters(jurisdictions=["Ontario"])


def test_the_facts_come_from_the_signed_document() -> None:
    doc = {"issuer": {"address": {"addressRegion": "CA-QC"}},
           "credentialSubject": {"achievement": {"alignment": [
               {"targetName": "Numeracy", "targetUrl": "https://s.example/n",
                "targetFramework": "Skills for Success"}]}}}
    facts = facts_of(doc, "cegep", "cegep-x")
    assert facts.jurisdiction == "CA-QC"
    assert facts.skills == {"numeracy", "https://s.example/n", "skills for success"}


def test_a_public_credential_is_shared_with_every_approved_subscriber_that_wants_it() -> None:
    subs = [sub("e1"), sub("e2", jurisdictions=["CA-BC"]), sub("e3", skills=["numeracy"])]
    got = transitions(facts=ONTARIO_DATA, visibility="public", shared_with=[], exposed=set(),
                      approved_subs=subs)
    assert got == [("e1", SHARED), ("e3", SHARED)]


def test_a_direct_share_reaches_an_employer_whatever_its_filters() -> None:
    got = transitions(facts=ONTARIO_DATA, visibility="private", shared_with=["e2"],
                      exposed=set(), approved_subs=[sub("e2", jurisdictions=["CA-BC"])])
    assert got == [("e2", SHARED)]


def test_making_it_private_unshares_it_from_everyone_who_holds_it_even_unsubscribed() -> None:
    got = transitions(facts=ONTARIO_DATA, visibility="private", shared_with=["e2"],
                      exposed={"e1", "e2", "gone"}, approved_subs=[sub("e1")])
    assert got == [("e1", UNSHARED), ("gone", UNSHARED)]


def test_nothing_changes_when_nothing_the_employer_sees_changes() -> None:
    assert transitions(facts=ONTARIO_DATA, visibility="employers", shared_with=[],
                       exposed={"e1"}, approved_subs=[sub("e1")]) == []
    assert transitions(facts=ONTARIO_DATA, visibility="private", shared_with=[], exposed=set(),
                       approved_subs=[sub("e1")]) == []


def test_retries_back_off_with_full_jitter_along_the_schedule_over_hours() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, 5.0, rng) for n in range(1, 9) for _ in range(50)]
    assert all(timedelta(0) <= d <= timedelta(hours=10) for d in delays)
    first = [retry_delay(1, 5.0, rng) for _ in range(200)]
    assert max(first) <= timedelta(seconds=5) and min(first) < timedelta(seconds=1)
    assert max(retry_delay(5, 5.0, rng) for _ in range(200)) > timedelta(hours=4)


def test_an_endpoint_is_disabled_after_consecutive_failures_or_five_failing_days() -> None:
    now = datetime.now(UTC)
    assert should_disable(5, 5, None, now)
    assert not should_disable(4, 5, now - timedelta(days=4), now)
    assert should_disable(1, 5, now - timedelta(days=5), now)


def test_the_token_bucket_grants_its_burst_then_refills_at_its_rate() -> None:
    granted, left, wait = take_tokens(50, 0, rate=10, burst=50, wanted=80)
    assert (granted, left) == (50, 0) and wait == pytest.approx(0.1)
    granted, left, _ = take_tokens(0, 0.35, rate=10, burst=50, wanted=10)
    assert granted == 3 and left == pytest.approx(0.5)
    assert take_tokens(10, 1000, rate=10, burst=50, wanted=1)[1] == 49  # never above burst


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    assert decode_cursor(encode_cursor(123456789012, 42)) == (123456789012, 42)
    assert decode_cursor(None) == (0, 0)
    with pytest.raises(ValueError):
        decode_cursor("not-a-cursor")


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://hr.example.com/hooks", True),
    ("http://hr.example.com/hooks", False),
    ("http://127.0.0.1:9000/h", False),
    ("https://10.0.0.8/h", False),
    ("https://user:pw@hr.example.com/h", False),
    ("https://localhost/h", False),
])
def test_webhook_endpoints_must_be_public_https(url: str, allowed: bool) -> None:
    assert (webhook_url_problem(url, allow_loopback_http=False) is None) == allowed


def test_loopback_http_is_allowed_only_when_the_deployment_says_so() -> None:
    assert webhook_url_problem("http://127.0.0.1:9000/h", allow_loopback_http=True) is None
    assert webhook_url_problem("http://10.0.0.1:9000/h", allow_loopback_http=True)


def test_our_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret, body = webhook_crypto.new_secret(), b'{"type":"credential.shared"}'
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_crypto.headers(secret, "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == {"type": "credential.shared"}
    with pytest.raises(Exception):  # noqa: B017 - any verification error will do
        Webhook(webhook_crypto.new_secret()).verify(body, headers)


def test_the_webhook_id_is_stable_per_event_and_endpoint() -> None:
    event, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert webhook_crypto.webhook_id(event, a) == webhook_crypto.webhook_id(event, a)
    assert webhook_crypto.webhook_id(event, a) != webhook_crypto.webhook_id(event, b)


def test_an_encrypted_secret_opens_only_for_its_own_subscription() -> None:
    box = webhook_crypto.SecretBox(bytes(32))
    mine, other = uuid.uuid4(), uuid.uuid4()
    sealed, nonce = box.seal(mine, "whsec_abc")
    assert b"whsec_abc" not in sealed
    assert box.open(mine, sealed, nonce) == "whsec_abc"
    with pytest.raises(InvalidTag):
        box.open(other, sealed, nonce)


def _view(**over: object) -> SimpleNamespace:
    base = {"credential_id": uuid.uuid4(), "learner_key": "k", "provider_id": "lakeshore-college",
            "definition_id": "lakeshore-data", "jurisdiction": "CA-ON", "skills": ["numeracy"],
            "document": {"id": "urn:uuid:x"}, "status": "active", "visibility": "private",
            "shared_with": [], "visibility_changed_at": None}
    return SimpleNamespace(**(base | over))


def test_a_share_then_unshare_in_one_batch_cancels_the_delivery_not_yet_sent() -> None:
    fx = Effects({}, [sub("e1")], base_url="https://r.example")
    view = _view()
    fx.reconcile(fx.update_view(view, shared_with=["e1"]))
    fx.reconcile(fx.update_view(view, shared_with=[]), previously_shared_with=["e1"])
    assert [e["type"] for e in fx.events] == [SHARED, UNSHARED]
    assert [(d["event_type"], d["status"]) for d in fx.deliveries] == [
        (SHARED, "cancelled"), (UNSHARED, "pending")]
    assert "credential" in fx.events[0]["body"]["data"]
    assert set(fx.events[1]["body"]["data"]) == {"credential_id", "credential_url", "unshared_at"}
    assert fx.exposures == {("e1", view.credential_id): False}


def test_no_event_is_made_before_the_signed_document_is_known() -> None:
    fx = Effects({}, [sub("e1")], base_url="https://r.example")
    fx.reconcile(_view(document=None, visibility="public"))
    assert fx.events == [] and fx.deliveries == []


def test_a_credential_with_several_subjects_gives_the_facts_of_all_of_them() -> None:
    doc = {"issuer": {"id": "https://r.example/issuers/x",
                      "address": {"addressRegion": "CA-QC"}},
           "credentialSubject": [
               {"id": "did:example:a", "achievement": {"alignment": [
                   {"targetName": "Numeracy"}, "not an object"]}},
               {"id": "did:example:b", "achievement": [{"alignment": {
                   "targetFramework": "ESCO"}}]},
               "junk", {"achievement": "not an object"}]}
    facts = facts_of(doc, "x", None)
    assert facts == Facts("x", None, "CA-QC", frozenset({"numeracy", "esco"}))


@pytest.mark.parametrize("subject", [None, [], "text", 5, [None], {"achievement": [5]},
                                     {"achievement": {"alignment": 7}}])
def test_facts_of_any_json_subject_never_raise(subject) -> None:
    doc = {"issuer": {"address": "nowhere"}, "credentialSubject": subject,
           "jurisdiction": ["CA-ON"]}
    assert facts_of(doc, "x", "d") == Facts("x", "d", None, frozenset())
