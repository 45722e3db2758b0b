"""The demo's side-by-side table of our verifier and the wallets' verifier (verifier-core):
how its verdicts read, and a clear line instead of a failure when Node.js or the npm
packages are missing. Pure: verifier-core's results are given, nothing runs."""

from __future__ import annotations

from rich.console import Console

from microcred_devstack import wallet_verifier
from microcred_devstack.wallet_verifier import Row, side_by_side, summary, verdicts

# A default credential (one status entry, ADR 8): every check passed, schema clean.
VALID = {"log": [{"id": "valid_signature", "valid": True},
                 {"id": "revocation_status", "valid": True},
                 {"id": "expiration", "valid": True},
                 {"id": "registered_issuer", "valid": True, "matchingIssuers": [{}]}],
         "additionalInformation": [{"id": "schema_check", "results": [
             {"schema": "ob", "result": {"valid": True}}]}]}
# A suspendable definition's credential: both entries, the one schema warning.
SUSPENDABLE = {"log": [*VALID["log"][:2], {"id": "suspension_status", "valid": True},
                       *VALID["log"][2:]],
               "additionalInformation": [{"id": "schema_check", "results": [
                   {"schema": "ob", "result": {"valid": False, "errors": [
                       {"instancePath": "/credentialStatus", "message": "must be object"}]}}]}]}


def text(table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def with_step(step: str, valid: bool) -> dict:
    return {**SUSPENDABLE, "log": [{**s, "valid": valid} if s["id"] == step else s
                                   for s in SUSPENDABLE["log"]]}


def test_a_credential_every_check_passed_reads_valid_registered_with_what_the_schema_said():
    assert summary(VALID) == "[green]valid[/] · registered issuer"
    assert summary(SUSPENDABLE) == ("[green]valid[/] · registered issuer · "
                                    "[yellow]OB schema: /credentialStatus must be object[/]")


def test_revoked_suspended_expired_and_unregistered_are_named():
    assert summary(with_step("revocation_status", False)).startswith("[red]revoked[/]")
    assert summary(with_step("suspension_status", False)).startswith("[red]suspended[/]")
    assert summary(with_step("expiration", False)).startswith("[red]expired[/]")
    assert summary(with_step("registered_issuer", False)).startswith(
        "[green]valid[/] · [yellow]issuer not registered[/]")


def test_a_fatal_error_is_invalid_with_its_name_and_an_unreadable_list_is_never_valid():
    assert summary({"errors": [{"name": "invalid_signature", "message": "x"}]}) == (
        "[red]invalid[/] (invalid_signature)")
    unknown = {"log": [{"id": "valid_signature", "valid": True},
                       {"id": "revocation_status", "error": {"name": "status_list_not_found"}}]}
    assert "valid[/]" not in summary(unknown) and "revocation_status: unknown" in summary(unknown)


def test_the_table_puts_both_verdicts_on_the_credentials_line():
    table = side_by_side([Row("Amara Okafor", "Data Analytics", "eddsa-rdfc-2022",
                              "valid", summary(VALID)),
                          Row("Liam Tremblay", "Premiers soins", "eddsa-rdfc-2022",
                              "revoked", summary(with_step("revocation_status", False)))])
    out = text(table)
    amara = next(line for line in out.splitlines() if "Amara" in line)
    assert "valid" in amara and "registered issuer" in amara
    liam = next(line for line in out.splitlines() if "Liam" in line)
    assert liam.count("revoked") == 2
    assert "verifier-core" in out and "our verifier" in out


def test_without_node_every_line_says_not_run_and_the_table_says_why(monkeypatch):
    monkeypatch.setattr(wallet_verifier.shutil, "which", lambda _: None)
    theirs, note = verdicts([{"proof": [{"cryptosuite": "eddsa-rdfc-2022"}]}],
                            ca_file="ca.pem", registries=[])
    assert theirs == ["not run"] and note == "verifier-core not run: Node.js is not installed"
    assert "Node.js is not installed" in text(side_by_side(
        [Row("a", "b", "eddsa-rdfc-2022", "valid", theirs[0])], note))


def test_without_the_npm_packages_the_line_says_how_to_install_them(monkeypatch, tmp_path):
    monkeypatch.setattr(wallet_verifier.shutil, "which", lambda _: "/usr/bin/node")
    monkeypatch.setattr(wallet_verifier, "PACKAGE", tmp_path / "missing")
    theirs, note = verdicts([{}], ca_file="ca.pem", registries=[])
    assert theirs == ["not run"] and "make install" in (note or "")


def test_a_jcs_credential_is_not_sent_to_verifier_core_which_only_does_rdfc(monkeypatch):
    sent: list[list[dict]] = []

    def fake_run(creds, **_):
        sent.append(creds)
        return [VALID for _ in creds]

    monkeypatch.setattr(wallet_verifier, "unavailable", lambda: None)
    monkeypatch.setattr(wallet_verifier, "run", fake_run)
    rdfc = {"id": "r", "proof": [{"cryptosuite": "eddsa-rdfc-2022"}]}
    jcs = {"id": "j", "proof": [{"cryptosuite": "eddsa-jcs-2022"}]}
    theirs, note = verdicts([jcs, rdfc], ca_file="ca.pem", registries=[])
    assert sent == [[rdfc]] and note is None
    assert theirs == ["not checked: verifier-core has no eddsa-jcs-2022", summary(VALID)]
