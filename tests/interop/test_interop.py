"""Python and the reference JavaScript stack (@digitalbazaar/vc) accept each other's
credentials, agree on revocation, and both refuse tampering."""

from __future__ import annotations

import copy
import random
import subprocess
import sys

import pytest

from microcred_shared.vc import UnsafeValueError, statuslist, verify_credential
from microcred_shared.vc.verify import Check
from microcred_testkit import vc_examples as examples

from .conftest import HERE, node_available, run_node, served

pytestmark = pytest.mark.interop
SUITES = ["eddsa-rdfc-2022", "eddsa-jcs-2022"]


@pytest.fixture
def issuer() -> examples.ExampleIssuer:
    world = examples.ExampleIssuer()
    world.publish_lists()
    return world


@pytest.mark.parametrize("suite", SUITES)
def test_python_signed_credentials_verify_in_javascript_with_their_status(issuer, suite,
                                                                          tmp_path):
    [result] = run_node("verify.mjs", [issuer.credential(1, suite=suite)],
                        documents=served(issuer), tmp_path=tmp_path)
    assert result == {"verified": True, "error": None,
                      "status": {"revocation": False, "suspension": False}}


def test_a_batch_of_one_definitions_credentials_verifies_in_javascript(issuer, tmp_path,
                                                                       monkeypatch):
    # From the third credential on, the achievement's and the issuer's canonical quads come
    # from the fast path's remembered fragments: JavaScript must still accept every proof.
    from microcred_shared.vc import fastcanon

    monkeypatch.setattr(fastcanon, "_memo", None)  # none remembered by earlier tests

    docs = [issuer.credential(10 + n, subject_id=f"did:example:batch-learner-{n}")
            for n in range(5)]
    probe = examples.example_credential(issuer_id=issuer.issuer_id,
                                        subject_id="did:example:batch-probe")
    _, fragments = fastcanon.fast_parts(probe)  # a new learner: the achievement is reused
    assert probe["credentialSubject"]["achievement"]["id"] in {f.element["id"] for f in fragments}
    results = run_node("verify.mjs", docs, documents=served(issuer), tmp_path=tmp_path)
    assert [r["verified"] for r in results] == [True] * 5, results


def test_a_burst_of_one_definitions_credentials_for_many_learners_verifies_in_javascript(
        issuer, tmp_path, monkeypatch):
    # Shaped as issuance's: the subject a blank node with the learner's name (any script),
    # a hashed identifier, a result and an end date, the achievement with blank nodes of its
    # own. The fragments' lines naming blank nodes come rendered per placement of each
    # credential's own hashes (wave 16): JavaScript must accept every proof.
    from microcred_shared.vc import fastcanon

    monkeypatch.setattr(fastcanon, "_memo", None)
    names = ["Zoë Ñúñez", "李小龙", "Ólafur Þórsson", "Ģirts Ēķis", "محمد", "Anne-Marie O'Neil",
             'Jo "JJ" Smith', "Émilie\tTab", "😀 Emoji", "plain"]

    def unsigned(n: int) -> dict:
        status = [issuer._statuslist.status_entry(
            status_list_credential=issuer.list_url(p), index=100 + n, purpose=p)
            for p in issuer._statuslist.PURPOSES]
        doc = examples.example_credential(
            issuer_id=issuer.issuer_id, credential_status=status,
            credential_id=f"urn:uuid:00000000-0000-4000-8000-{1000 + n:012d}")
        subject = doc["credentialSubject"]
        del subject["id"]
        subject["name"] = f"{names[n % len(names)]} {n}"
        subject["identifier"] = [{"type": "IdentityObject", "identityType": "emailAddress",
                                  "hashed": True, "identityHash": f"sha256${n:064x}",
                                  "salt": f"{n * 7919:016x}"}]
        subject["result"] = [{"type": ["Result"], "value": str(50 + n % 50)}]
        subject["activityEndDate"] = "2026-06-30T00:00:00Z"
        subject["achievement"]["level"] = {"framework": "EQF", "value": "5"}
        return doc

    docs = [issuer._proofs.sign(unsigned(n), issuer.private_key, issuer.verification_method,
                                created=issuer.valid_from) for n in range(40)]
    _, fragments = fastcanon.fast_parts(unsigned(40))  # another learner: the same fragments
    assert len(fragments) >= 2 and fastcanon._merged(fragments).placements  # the path tested
    results = run_node("verify.mjs", docs, documents=served(issuer), tmp_path=tmp_path)
    assert [r["verified"] for r in results] == [True] * 40, results


@pytest.mark.parametrize("suite", SUITES)
def test_javascript_sees_a_revocation_and_a_suspension_set_in_python(issuer, suite, tmp_path):
    revoked, suspended = issuer.credential(2, suite=suite), issuer.credential(3, suite=suite)
    statuslist.set_bit(issuer.lists["revocation"], 2)
    statuslist.set_bit(issuer.lists["suspension"], 3)
    issuer.publish_lists(suite)
    results = run_node("verify.mjs", [revoked, suspended], documents=served(issuer),
                       tmp_path=tmp_path)
    assert [r["status"] for r in results] == [{"revocation": True, "suspension": False},
                                              {"revocation": False, "suspension": True}]


@pytest.mark.parametrize("suite", SUITES)
async def test_javascript_signed_credentials_verify_in_python(issuer, suite, tmp_path):
    unsigned = [examples.example_credential(issuer_id=issuer.issuer_id, credential_status=[
        statuslist.status_entry(status_list_credential=issuer.list_url("revocation"), index=4)])]
    [signed] = run_node("sign.mjs", unsigned, "--seed", bytes(range(32)).hex(), "--vm",
                        issuer.verification_method, "--suite", suite,
                        documents=served(issuer), tmp_path=tmp_path)
    assert signed["proof"]["cryptosuite"] == suite
    result = await verify_credential(signed, resolve_document=issuer.resolve)
    assert result.verified, result.problems()
    for fast in (True, False):  # the reference path agrees on JS-made proofs too
        from microcred_shared.vc.proofs import verify_proof
        assert (await verify_proof(signed, lambda vm: issuer.private_key.public_key(),
                                   fast=fast)).ok


@pytest.mark.parametrize("suite", SUITES)
async def test_a_tampered_credential_fails_in_both_stacks_with_a_reason(issuer, suite, tmp_path):
    tampered = issuer.credential(5, suite=suite)
    tampered["credentialSubject"]["achievement"]["level"]["value"] = "8"
    [js] = run_node("verify.mjs", [tampered], documents=served(issuer), tmp_path=tmp_path)
    assert not js["verified"] and "Invalid signature" in js["error"]
    ours = await verify_credential(tampered, resolve_document=issuer.resolve)
    assert ours.status == "invalid"
    assert ours.checks["proof"] == Check(False, "signature does not match the document")


def _variant(rng: random.Random, base: dict) -> dict:
    pieces = ['"', "\\", "\n", "\r", "\t", "é", "中文", "😀", "\u2028", "\uffff", "'",
              "<tag>", "%", " ", "x", "0"]
    # (numbers below 1e-6 are refused at signing: jsonld.js renders 1e-7 as "0")
    numbers = [0, -0.0, 1, 2.0, 1.5, -3.25, 1e-6, 2.5e-6, 123456789.125, 9007199254740991,
               1e20, 0.1, 1 / 3, 2.675, -1e15 - 0.25]

    def text() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
    doc = copy.deepcopy(base)
    achievement = doc["credentialSubject"]["achievement"]
    doc["name"], achievement["name"], achievement["description"] = text(), text(), text()
    achievement["tag"] = [text() for _ in range(rng.randint(0, 3))]
    achievement["creditsAvailable"] = rng.choice(numbers)
    achievement["notionalWorkload"] = {"hours": rng.choice(numbers), "ects": rng.choice(numbers)}
    doc["credentialSubject"]["creditsEarned"] = rng.choice(numbers)
    doc["credentialSubject"]["result"] = [{"type": ["Result"], "value": text()}
                                          for _ in range(rng.randint(0, 2))]
    return doc


def test_javascript_verifies_python_proofs_over_tricky_strings_and_numbers(issuer, tmp_path):
    rng = random.Random(20260630)
    base = examples.example_credential(issuer_id=issuer.issuer_id)
    signed = []
    for n in range(60):
        suite = SUITES[n % 2]
        try:
            signed.append(examples_sign(issuer, _variant(rng, base), suite))
        except UnsafeValueError:
            continue  # refused on purpose (JS would sort it differently)
    assert len(signed) >= 45  # the rest mix emoji with U+E000..U+FFFF and are refused
    results = run_node("verify.mjs", signed, documents=served(issuer), tmp_path=tmp_path)
    failures = [(doc["name"], r["error"]) for doc, r in zip(signed, results, strict=True)
                if not r["verified"]]
    assert failures == []


def examples_sign(issuer: examples.ExampleIssuer, doc: dict, suite: str) -> dict:
    from microcred_shared.vc import sign
    return sign(doc, issuer.private_key, issuer.verification_method, cryptosuite=suite)


def test_the_vendored_contexts_equal_the_pinned_npm_packages():
    node_available()
    done = subprocess.run([sys.executable, str(HERE / "sync_contexts.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
