"""The fast RDFC-1.0 path must give byte-for-byte what the pyld reference path gives —
or the same kind of refusal — for any credential content, also when a definition's subtree
(the achievement, the issuer) is walked once and reused for every credential embedding it."""

from __future__ import annotations

import copy
import itertools
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microcred_shared.vc import canon, fastcanon
from microcred_shared.vc.errors import VcError
from microcred_testkit import vc_examples as examples

UNSAFE = "\x00\x01\x08\x0b\x0c\x0e\x1f\x7f"
# Text that canonicalizers must escape alike: quotes, backslashes, newlines, tabs, CR,
# accents, CJK, emoji (astral plane), right-to-left script, combining marks.
tricky = st.sampled_from(['"', "\\", "\n", "\r", "\t", "é", "ç", "中文", "😀", "עברית",
                          "e\u0301", "\u2028", " ", "<", ">", "{", "%20", "'"])
safe_text = st.lists(st.one_of(tricky, st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=UNSAFE), max_size=12)),
    max_size=4).map("".join)
any_text = st.one_of(safe_text, st.builds(lambda a, c, b: a + c + b, safe_text,
                                          st.sampled_from(UNSAFE), safe_text))
numbers = st.one_of(
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e20, max_value=1e20),
    st.sampled_from([0, 0.0, -0.0, 1.0, 2.5, 1e-6, 1e-7, 123456789.125, 5e-324, 2**53 - 1]))
scalars = st.one_of(safe_text, numbers, st.booleans())
dates = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
iris = st.one_of(
    st.sampled_from(["https://example.com/a", "urn:uuid:00000000-0000-4000-8000-000000000001",
                     "did:example:123", "https://example.com/a#frag", "http://x.test/é"]),
    st.from_regex(r"https://example\.org/[a-z0-9]{1,8}", fullmatch=True))


def maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any], p: bool = True) -> Any:
    return draw(strategy) if p and draw(st.booleans()) else None


@st.composite
def achievements(draw: st.DrawFn) -> dict[str, Any]:
    a = examples.example_achievement(draw(iris))
    a["name"] = draw(any_text)
    a["description"] = draw(safe_text)
    a["criteria"] = {"narrative": draw(safe_text)} if draw(st.booleans()) else {}
    a["creditsAvailable"] = draw(numbers)
    a["notionalWorkload"] = {k: draw(numbers) for k in draw(
        st.lists(st.sampled_from(["hours", "ects"]), unique=True))}
    a["level"] = {"framework": draw(st.sampled_from(["EQF", "NQF", "CA-ON-QF"])),
                  "value": draw(scalars)}
    alignment = {"type": ["Alignment"], "targetName": draw(safe_text),
                 "targetUrl": draw(iris)}
    # Identical entries give blank nodes that only RDFC-1.0's N-degree step tells apart.
    a["alignment"] = [copy.deepcopy(alignment) for _ in range(draw(st.integers(0, 3)))]
    a["resultDescription"] = [{
        "id": draw(iris), "type": ["ResultDescription"], "name": draw(safe_text),
        "resultType": "RubricCriterionLevel",
        "allowedValue": draw(st.lists(safe_text, max_size=3))}]  # an @list container
    a["tag"] = draw(st.lists(safe_text, max_size=3))
    a["prerequisites"] = draw(st.one_of(safe_text, st.lists(safe_text, max_size=3)))
    a["components"] = draw(st.lists(iris, max_size=2))
    for key in draw(st.lists(st.sampled_from(sorted(a)), max_size=4, unique=True)):
        if key not in ("id", "type"):
            del a[key]
    return a


@st.composite
def credentials(draw: st.DrawFn) -> dict[str, Any]:
    doc = examples.example_credential(credential_id=draw(iris), subject_id=draw(iris),
                                      valid_from=draw(dates))
    subject = doc["credentialSubject"]
    subject["achievement"] = draw(achievements())
    subject["creditsEarned"] = draw(numbers)
    subject["result"] = [{"type": ["Result"], "value": draw(safe_text)}
                         for _ in range(draw(st.integers(0, 2)))]
    doc["name"] = draw(any_text)
    doc["issuer"] = draw(st.one_of(st.just(doc["issuer"]), iris))
    if draw(st.booleans()):
        doc["validUntil"] = draw(dates)
    if draw(st.booleans()):
        doc["evidence"] = [{"type": ["Evidence"], "name": draw(safe_text),
                            "narrative": draw(safe_text)}]
    if draw(st.booleans()):
        doc["credentialStatus"] = {
            "id": draw(iris), "type": "BitstringStatusListEntry",
            "statusPurpose": draw(st.sampled_from(["revocation", "suspension"])),
            "statusListIndex": str(draw(st.integers(0, 131071))),
            "statusListCredential": draw(iris)}
    if draw(st.booleans()):
        doc["credentialStatus" if "credentialStatus" not in doc else "credentialSchema"] = []
    if draw(st.integers(0, 9)) == 0:  # an undefined term must be refused by both paths
        target = draw(st.sampled_from([doc, subject, subject["achievement"]]))
        target[draw(st.sampled_from(["foo", "levels", "nameEn"]))] = draw(scalars)
    if draw(st.integers(0, 9)) == 0:  # a relative @id
        subject["id"] = draw(st.text(string.ascii_letters, min_size=1, max_size=5))
    return doc


def utf8(doc: dict[str, Any]) -> str:
    """The fast path's UTF-8 bytes (what a proof hashes), as text to compare."""
    return fastcanon.rdfc_fast_utf8(doc).decode("utf-8")


def outcome(canonicalize: Any, doc: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", canonicalize(doc)
    except VcError as exc:
        return "refused", type(exc).__name__


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(credentials())
def test_fast_canonical_nquads_equal_the_reference_for_random_credentials(doc: dict) -> None:
    expected = outcome(canon.rdfc_reference, doc)
    assert outcome(fastcanon.rdfc_fast, doc) == expected
    assert outcome(utf8, doc) == expected  # what a proof hashes: the same bytes
    if expected[0] == "ok":
        # and the comparison is not vacuous: every accepted credential of this shape is
        # really walked by the fast path (fast_quads raises Fallback otherwise).
        fastcanon.fast_quads(doc)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(credentials())
def test_pyoxigraph_rdfc_equals_pyld_urdna2015_on_the_same_quads(doc: dict) -> None:
    try:
        expected = canon.rdfc_reference(doc)
        quads = fastcanon.fast_quads(doc)
    except (VcError, fastcanon.Fallback):
        return
    assert fastcanon._oxigraph_canonical(quads) == expected


def test_the_sample_credential_takes_the_fast_path_without_falling_back() -> None:
    doc = examples.example_credential()
    quads = fastcanon.fast_quads(doc)  # raises Fallback if it would not
    assert fastcanon.canonicalize_quads(quads) == canon.rdfc_reference(doc)


def test_identical_blank_nodes_are_canonicalized_by_the_full_algorithm() -> None:
    doc = examples.example_credential()
    alignment = doc["credentialSubject"]["achievement"]["alignment"][0]
    doc["credentialSubject"]["achievement"]["alignment"] = [alignment, dict(alignment)]
    assert fastcanon.rdfc_fast(doc) == canon.rdfc_reference(doc)


def test_an_embedded_context_falls_back_to_the_reference_path() -> None:
    doc = examples.example_credential()
    doc["credentialSubject"]["@context"] = {"extra": "https://example.com/extra"}
    doc["credentialSubject"]["extra"] = "x"
    assert fastcanon.rdfc_fast(doc) == canon.rdfc_reference(doc)


# Remembered fragments
_serial = itertools.count()


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no remembered fragment (the memo is per process: a test that
    changed a shared node's content before would leave it walked every time)."""
    monkeypatch.setattr(fastcanon, "_memo", None)


def learner_copy(doc: dict[str, Any]) -> dict[str, Any]:
    """The same credential for another learner: its own id, subject id and result (a new
    dict tree; the achievement and the issuer are equal but not the same objects)."""
    n = next(_serial)
    other = copy.deepcopy(doc)
    other["id"] = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
    subject = other["credentialSubject"]
    subject["id"] = f"did:example:learner-{n}"
    subject["result"] = [{"type": ["Result"], "value": str(n % 100)}]
    return other


def reused_ids(doc: dict[str, Any]) -> list[Any]:
    """The ids of the nodes the fast walk took from remembered fragments."""
    _, fragments = fastcanon.fast_parts(doc)
    return [f.element["id"] for f in fragments]


def achievement_id(seed: str) -> str:
    return f"https://issuers.example.ca/achievements/{seed}-{next(_serial)}"


def test_the_third_credential_of_a_definition_reuses_its_achievement_and_issuer() -> None:
    doc = examples.example_credential()
    doc["credentialSubject"]["achievement"]["id"] = achievement_id("reuse")
    first, second, third = (learner_copy(doc) for _ in range(3))
    assert fastcanon.rdfc_fast(first) == canon.rdfc_reference(first)
    assert fastcanon.rdfc_fast(second) == canon.rdfc_reference(second)
    ids = reused_ids(third)
    assert doc["credentialSubject"]["achievement"]["id"] in ids
    assert doc["issuer"]["id"] in ids
    assert fastcanon.rdfc_fast(third) == canon.rdfc_reference(third)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(credentials())
def test_credentials_sharing_a_definition_canonicalize_as_pyld_does(doc: dict) -> None:
    # Random achievements (blank nodes, @list values, identical alignments that need the
    # N-degree step, numbers of every kind, undefined terms): each one is canonicalized in
    # four learners' credentials, so the last ones go through the remembered fragment.
    expected = outcome(canon.rdfc_reference, doc)
    for _ in range(4):
        other = learner_copy(doc)
        assert outcome(fastcanon.rdfc_fast, other) == outcome(canon.rdfc_reference, other)
        assert outcome(utf8, other) == outcome(canon.rdfc_reference, other)
    assert outcome(fastcanon.rdfc_fast, doc) == expected
    assert outcome(utf8, doc) == expected


def test_a_node_in_two_fragments_and_the_document_is_signed_once() -> None:
    # The same image (an IRI node without blank nodes) in the achievement, the issuer and
    # the credential itself: its quads are in two fragments and among the document's own,
    # and the canonical form, like the RDF dataset, has each once.
    doc = examples.example_credential()
    image = {"id": f"https://issuers.example.ca/img/{next(_serial)}.png", "type": "Image",
             "caption": "The badge"}
    doc["credentialSubject"]["achievement"]["id"] = achievement_id("image")
    doc["credentialSubject"]["achievement"]["image"] = dict(image)
    doc["issuer"]["image"] = dict(image)
    doc["image"] = dict(image)
    for n in range(4):
        other = learner_copy(doc)
        expected = canon.rdfc_reference(other)
        assert expected.count('"The badge"') == 1
        assert fastcanon.rdfc_fast(other) == expected
        assert utf8(other) == expected
        if n >= 2:
            assert len(reused_ids(learner_copy(doc))) >= 2  # achievement and issuer


def remembered(achievement: dict[str, Any]) -> dict[str, Any]:
    """A credential whose achievement has been seen twice (so it is remembered)."""
    doc = examples.example_credential()
    doc["credentialSubject"]["achievement"] = achievement
    for _ in range(2):
        fastcanon.rdfc_fast(learner_copy(doc))
    assert achievement["id"] in reused_ids(learner_copy(doc))
    return doc


@pytest.mark.parametrize(("before", "after"), [
    (1, True), (True, 1), (0, False), (1.0, True), (0.0, -0.0), (9007199254740992.0, 2**53),
    (1, 1.0), (3, "3")])
def test_an_equal_looking_value_of_another_type_is_not_taken_from_the_fragment(before: Any,
                                                                             after: Any) -> None:
    # Python says True == 1 == 1.0 and 2**53 == 2.0**53; RDF and the signing rules do not.
    achievement = examples.example_achievement(achievement_id("types"))
    achievement["creditsAvailable"] = before
    achievement["level"] = {"framework": "EQF", "value": before}
    doc = learner_copy(remembered(achievement))
    doc["credentialSubject"]["achievement"]["level"]["value"] = after
    assert outcome(fastcanon.rdfc_fast, doc) == outcome(canon.rdfc_reference, doc)
    doc["credentialSubject"]["achievement"]["creditsAvailable"] = after
    assert outcome(fastcanon.rdfc_fast, doc) == outcome(canon.rdfc_reference, doc)


def test_a_changed_achievement_under_the_same_id_is_walked_again() -> None:
    achievement = examples.example_achievement(achievement_id("changed"))
    doc = remembered(achievement)
    changed = learner_copy(doc)
    changed["credentialSubject"]["achievement"]["criteria"]["narrative"] = "Another rubric."
    assert fastcanon.rdfc_fast(changed) == canon.rdfc_reference(changed)


def test_a_fragment_does_not_share_the_callers_dicts() -> None:
    # Credentials built around one achievement object (as a builder that caches it would):
    # changing that object in place after signing changes the next canonical form.
    achievement = examples.example_achievement(achievement_id("in-place"))
    doc = examples.example_credential()
    doc["credentialSubject"]["achievement"] = achievement
    subject = doc["credentialSubject"]
    for i in range(3):
        doc["credentialSubject"] = {**subject, "id": f"did:example:in-place-{i}"}
        fastcanon.rdfc_fast(doc)
    doc["credentialSubject"] = {**subject, "id": "did:example:in-place-3"}
    assert achievement["id"] in reused_ids(doc)
    doc["credentialSubject"] = {**subject, "id": "did:example:in-place-4"}
    achievement["name"] = "Renamed in place"
    achievement["criteria"]["narrative"] = "Changed in place"
    assert "Renamed in place" in fastcanon.rdfc_fast(doc)
    assert fastcanon.rdfc_fast(doc) == canon.rdfc_reference(doc)


def test_the_same_achievement_twice_in_one_credential_gets_two_sets_of_blank_nodes() -> None:
    achievement = examples.example_achievement(achievement_id("twice"))
    doc = remembered(achievement)
    twice = learner_copy(doc)
    subject = twice["credentialSubject"]
    twice["credentialSubject"] = [subject, {**copy.deepcopy(subject), "id": "did:example:b"}]
    expected = canon.rdfc_reference(twice)
    assert fastcanon.rdfc_fast(twice) == expected
    assert expected.count("_:c14n") > canon.rdfc_reference(doc).count("_:c14n")


def test_an_id_that_is_not_an_iri_is_never_a_fragment() -> None:
    # A blank-node id falls back to pyld, a relative one is refused: never remembered.
    for ident in ("_:b0", "relative"):
        achievement = examples.example_achievement(ident)
        doc = examples.example_credential()
        doc["credentialSubject"]["achievement"] = achievement
        for _ in range(4):
            other = learner_copy(doc)
            assert outcome(fastcanon.rdfc_fast, other) == outcome(canon.rdfc_reference, other)


def test_the_memo_stays_bounded() -> None:
    memo = fastcanon._shared_memo()
    doc = examples.example_credential()
    for i in range(40):
        doc["credentialSubject"]["achievement"] = examples.example_achievement(
            achievement_id(f"bound{i}"))
        for _ in range(3):
            fastcanon.rdfc_fast(learner_copy(doc))
    assert 0 < memo.weight <= fastcanon._FRAGMENT_WEIGHT_MAX
    assert memo.weight == sum(f.weight for f in memo.fragments.values())


def test_refusals_are_the_same_through_a_fragment() -> None:
    achievement = examples.example_achievement(achievement_id("refused"))
    doc = learner_copy(remembered(achievement))
    doc["credentialSubject"]["achievement"]["criteria"]["narrative"] = "bad \x01 char"
    with pytest.raises(VcError):
        fastcanon.rdfc_fast(doc)
    assert outcome(fastcanon.rdfc_fast, doc) == outcome(canon.rdfc_reference, doc)


# A definition's fragments' lines naming blank nodes, rendered once per placement of a
# document's own first-degree hashes among theirs (wave 16)
learner_names = st.lists(st.one_of(tricky, st.text(st.characters(
    blacklist_categories=("Cs",), blacklist_characters=UNSAFE), max_size=8)),
    min_size=1, max_size=4).map("".join)


@st.composite
def learners(draw: st.DrawFn) -> dict[str, Any]:
    """What differs between the credentials of one definition: the learner's name (any
    script), the results, optional identifiers and evidence (blank nodes of their own)."""
    subject: dict[str, Any] = {"name": draw(learner_names)}
    subject["result"] = [{"type": ["Result"], "value": draw(safe_text)}
                         for _ in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        subject["identifier"] = [{
            "type": "IdentityObject", "identityType": "emailAddress", "hashed": True,
            "identityHash": "sha256$" + draw(st.text("0123456789abcdef", min_size=8,
                                                     max_size=64)),
            "salt": draw(st.text("0123456789abcdef", max_size=16))}]
    if draw(st.booleans()):
        subject["activityEndDate"] = draw(dates)
    if draw(st.booleans()):
        subject["creditsEarned"] = draw(numbers)
    return subject


def many_blank_nodes(seed: str) -> dict[str, Any]:
    """An achievement with blank nodes of its own (criteria, level, workload, alignments):
    the document's hashes fall among theirs in many ways."""
    a = examples.example_achievement(achievement_id(seed))
    a["level"] = {"framework": "EQF", "value": "5"}
    a["notionalWorkload"] = {"hours": 45}
    a["alignment"] = [{"type": ["Alignment"], "targetName": f"Skill {n}",
                       "targetUrl": f"https://example.org/skills/{n}"} for n in range(4)]
    return a


_DEFINITION = examples.example_credential()
_DEFINITION["credentialSubject"]["achievement"] = many_blank_nodes("placements")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(learners())
def test_a_definitions_credentials_for_any_learner_are_pyld_s_bytes(subject: dict) -> None:
    # One remembered achievement and issuer for all examples (the memo is per test, each
    # example starts by walking the definition twice so that the third copy reuses it).
    doc = learner_copy(_DEFINITION)
    for _ in range(2):
        fastcanon.rdfc_fast_utf8(learner_copy(doc))
    doc["credentialSubject"] |= subject
    expected = outcome(canon.rdfc_reference, doc)
    assert outcome(utf8, doc) == expected
    assert outcome(fastcanon.rdfc_fast, doc) == expected
    if expected[0] == "ok":  # not vacuous: the fragments were reused
        assert len(reused_ids(learner_copy(doc))) == 2  # the achievement and the issuer


def test_a_placement_is_rendered_once_and_each_credential_gets_its_own_labels() -> None:
    doc = examples.example_credential()
    doc["credentialSubject"]["achievement"] = many_blank_nodes("rendered-once")
    docs = [learner_copy(doc) for _ in range(60)]
    for n, other in enumerate(docs):
        other["credentialSubject"]["name"] = f"Learner {n} Ñúñez 中文 😀"
    for other in docs[:2]:
        fastcanon.rdfc_fast_utf8(other)
    for other in docs[2:]:
        assert utf8(other) == canon.rdfc_reference(other)
    _, fragments = fastcanon.fast_parts(learner_copy(doc))  # another learner: same fragments
    assert len(fragments) == 2
    merged = fastcanon._merged(fragments)
    # 58 credentials reusing the fragments, in fewer placements: some were reused, and
    # every one of them gave the reference bytes above.
    assert 0 < len(merged.placements) < 58
