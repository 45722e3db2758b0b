"""`python -m microcred_assessment admin ...`: the operator's CLI over the admin API.

It talks HTTP to a running assessment service (MICROCRED_ASSESSMENT_URL, or the local port)
with MICROCRED_OPERATOR_TOKEN, so the CLI and the API are one code path: the running
service refreshes its catalogue and talks to the broker itself. Output is JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from microcred_assessment.settings import CliSettings

app = typer.Typer(help="Onboard providers, manage their credentials and definitions, read "
                       "the audit log.", no_args_is_help=True)
providers = typer.Typer(help="Providers: create, update, suspend, reactivate.",
                        no_args_is_help=True)
api_keys = typer.Typer(help="HTTP API keys of a provider.", no_args_is_help=True)
kafka = typer.Typer(help="The Kafka SASL/SCRAM principal of a provider.",
                    no_args_is_help=True)
definitions = typer.Typer(help="Credential definitions: create, new version, retire.",
                          no_args_is_help=True)
app.add_typer(providers, name="providers")
app.add_typer(api_keys, name="api-keys")
app.add_typer(kafka, name="kafka")
app.add_typer(definitions, name="definitions")


def call(method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
         ) -> Any:
    settings = CliSettings()
    if settings.operator_token is None:
        raise typer.Exit(_fail("MICROCRED_OPERATOR_TOKEN is not set"))
    headers = {"authorization": f"Bearer {settings.operator_token.get_secret_value()}"}
    try:
        r = httpx.request(method, settings.base_url + path, json=body, headers=headers,
                          params={k: v for k, v in (params or {}).items() if v is not None},
                          timeout=60)
    except httpx.HTTPError as exc:
        raise typer.Exit(_fail(f"cannot reach {settings.base_url}: {exc}")) from exc
    if r.status_code >= 400:
        raise typer.Exit(_fail(r.text, code=r.status_code))
    out = r.json()
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    return out


def _fail(message: str, code: int = 0) -> int:
    typer.echo(message, err=True)
    return 2 if code in (0, 401, 403) else 1


def _load(file: Path) -> Any:
    return json.loads(sys.stdin.read() if str(file) == "-" else file.read_text("utf-8"))


@providers.command("list")
def providers_list() -> None:
    call("GET", "/v1/admin/providers")


@providers.command("show")
def providers_show(provider_id: str) -> None:
    call("GET", f"/v1/admin/providers/{provider_id}")


@providers.command("create")
def providers_create(
        file: Annotated[Path, typer.Argument(help="provider JSON, or - for stdin")]) -> None:
    call("POST", "/v1/admin/providers", _load(file))


@providers.command("update")
def providers_update(file: Path) -> None:
    body = _load(file)
    call("PUT", f"/v1/admin/providers/{body['id']}", body)


@providers.command("suspend")
def providers_suspend(provider_id: str, reason: str = typer.Option(..., "--reason")) -> None:
    call("POST", f"/v1/admin/providers/{provider_id}/suspend", {"reason": reason})


@providers.command("reactivate")
def providers_reactivate(provider_id: str,
                         reason: str = typer.Option(..., "--reason")) -> None:
    call("POST", f"/v1/admin/providers/{provider_id}/reactivate", {"reason": reason})


@api_keys.command("create")
def keys_create(provider_id: str) -> None:
    call("POST", f"/v1/admin/providers/{provider_id}/api-keys")


@api_keys.command("rotate")
def keys_rotate(provider_id: str, key_id: str) -> None:
    call("POST", f"/v1/admin/providers/{provider_id}/api-keys/{key_id}/rotate")


@api_keys.command("revoke")
def keys_revoke(provider_id: str, key_id: str) -> None:
    call("DELETE", f"/v1/admin/providers/{provider_id}/api-keys/{key_id}")


@kafka.command("create")
def kafka_create(provider_id: str) -> None:
    call("POST", f"/v1/admin/providers/{provider_id}/kafka-principal")


@kafka.command("rotate")
def kafka_rotate(provider_id: str) -> None:
    call("POST", f"/v1/admin/providers/{provider_id}/kafka-principal/rotate")


@kafka.command("revoke")
def kafka_revoke(provider_id: str) -> None:
    call("DELETE", f"/v1/admin/providers/{provider_id}/kafka-principal")


@definitions.command("list")
def definitions_list(provider: str | None = typer.Option(None, "--provider")) -> None:
    call("GET", "/v1/admin/definitions", params={"provider": provider})


@definitions.command("show")
def definitions_show(definition_id: str) -> None:
    call("GET", f"/v1/admin/definitions/{definition_id}")


@definitions.command("create")
def definitions_create(file: Path) -> None:
    call("POST", "/v1/admin/definitions", _load(file))


@definitions.command("version")
def definitions_version(file: Path) -> None:
    """Publish the file as the next version of the definition it names."""
    body = _load(file)
    call("PUT", f"/v1/admin/definitions/{body['id']}", body)


@definitions.command("retire")
def definitions_retire(definition_id: str, reason: str = typer.Option(..., "--reason")) -> None:
    call("POST", f"/v1/admin/definitions/{definition_id}/retire", {"reason": reason})


@app.command("audit")
def audit(provider: str | None = typer.Option(None, "--provider"),
          since: str | None = typer.Option(None, "--since", help="ISO 8601 date-time"),
          outcome: str | None = typer.Option(None, "--outcome", help="refused | changed"),
          limit: int = typer.Option(200, "--limit")) -> None:
    call("GET", "/v1/admin/audit", params={"provider": provider, "since": since,
                                           "outcome": outcome, "limit": limit})
