"""`python -m microcred_devstack up|down|status|logs` — the local stack without Docker."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .config import SERVICES, default_state_dir
from .kafka import KafkaError, ensure_kafka_jars
from .postgres import PostgresError
from .processes import ServiceError, tail
from .stack import Stack

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err_console = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="MICROCRED_STATE_DIR",
        help="Where pids, data and logs live (default: <repo>/.state).",
    ),
]


def _stack(state_dir: Path | None) -> Stack:
    # With the SCRAM/ACL listener on, as providers that publish straight to Kafka use it.
    return Stack(state_dir or default_state_dir(), kafka_sasl=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


@app.command()
def up(
    state_dir: StateDir = None,
    no_services: Annotated[bool, typer.Option("--no-services", help="Infra only.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait per service.")] = 60.0,
) -> None:
    """Start Kafka, PostgreSQL, databases, topics and (unless --no-services) the services."""
    stack = _stack(state_dir)
    started = time.monotonic()
    try:
        with console.status("Kafka jars (first run fetches them with Maven)..."):
            ensure_kafka_jars()
        with console.status("Kafka, PostgreSQL, databases, topics..."):
            stack.start_infra()
        if not no_services:
            with console.status(f"services: {', '.join(SERVICES)}..."):
                stack.start_tools()
                stack.start_services(timeout=timeout)
    except (KafkaError, PostgresError, ServiceError, RuntimeError, OSError) as err:
        _fail(f"{err}\n(what did start keeps running; `down` stops it)")
    _print_table(stack, stack.status())
    console.print(
        f"up in {time.monotonic() - started:.1f}s; state in {stack.state_dir}; "
        f"details: {stack.manifest_file}"
    )
    console.print(  # did:web needs https: the registry's certificate is from our own CA
        f"registry over https, certificate from this stack's CA: {stack.ca_file}\n"
        f"  trust it per command: curl --cacert {stack.ca_file} …, "
        f"SSL_CERT_FILE={stack.ca_file} (Python), NODE_EXTRA_CA_CERTS={stack.ca_file} (Node)",
        highlight=False,
    )


@app.command()
def down(
    state_dir: StateDir = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete Kafka and PG data.")] = False,
) -> None:
    """Stop what `up` started: services first, then Kafka, then the embedded PostgreSQL."""
    stack = _stack(state_dir)
    stopped = stack.down(purge=purge)
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@app.command()
def scale(
    service: Annotated[str, typer.Argument(help=f"One of {', '.join(SERVICES)}.")],
    instances: Annotated[int, typer.Argument(min=1, help="How many instances to run.")],
    state_dir: StateDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait per instance.")] = 60.0,
) -> None:
    """Run N instances of a running stack's service: the first keeps its port, the others
    get free ones; they share the consumer groups and the outbox (ADR 2)."""
    if service not in SERVICES:
        _fail(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    stack = _stack(state_dir)
    try:
        stack.start_infra(topics=False)
        for number in range(2, instances + 1):
            stack.start_instance(service, number, timeout=timeout)
            console.print(f"{service}-{number}: {stack.instance_url(service, number)}")
    except (KafkaError, PostgresError, ServiceError, RuntimeError, OSError) as err:
        _fail(str(err))
    for number in stack.extra_instances(service):
        if number > instances:
            stack.instance(service, number).terminate()
            console.print(f"{service}-{number}: stopped")


@app.command()
def status(state_dir: StateDir = None) -> None:
    """Show what runs (exit code 1 when nothing does)."""
    stack = _stack(state_dir)
    rows = stack.status()
    _print_table(stack, rows)
    if not any(row["running"] for row in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    name: Annotated[
        str | None, typer.Argument(help="kafka, kafka-server, postgres or a service")
    ] = None,
    lines: Annotated[int, typer.Option("-n", "--lines")] = 40,
    state_dir: StateDir = None,
) -> None:
    """Print the last lines of one log (or of every log)."""
    log_dir = _stack(state_dir).log_dir
    files = {"kafka": "kafka.out", "kafka-server": "kafka-server.log", "postgres": "postgres.log"}
    files.update({s: f"{s}.log" for s in SERVICES})
    if name is not None and name not in files:
        _fail(f"unknown log {name!r}; one of {', '.join(files)}")
    for key in [name] if name else list(files):
        path = log_dir / files[key]
        if name or path.exists():
            console.rule(f"{key}: {path}")
            typer.echo(tail(path, lines) or "(empty)")  # raw: no re-wrapping of log lines


def _print_table(stack: Stack, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"microcred stack ({stack.state_dir})")
    for column in ("component", "state", "pid", "address", "log"):
        table.add_column(column, overflow="fold")
    for row in rows:
        state = "[green]running[/]" if row["running"] else "[dim]stopped[/]"
        log = Path(row["log"])
        shown = log.relative_to(stack.state_dir) if log.is_relative_to(stack.state_dir) else log
        # Mask URL passwords on screen (a DATABASE_URL may hold a real one); stack.json has all.
        address = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", row["address"])
        table.add_row(row["name"], state, str(row["pid"] or "-"), address, str(shown))
    console.print(table)


def main() -> None:
    app()


@app.command()
def demo(state_dir: StateDir = None) -> None:
    """Publish a realistic batch of results to the running stack and show what happened."""
    import asyncio

    from .demo import run

    stack = _stack(state_dir)
    if not stack.manifest_file.exists():
        _fail("the stack is not up: run `make up` (or `python -m microcred_devstack up`)")
    raise typer.Exit(asyncio.run(run(stack.state_dir)))


@app.command()
def trace(trace_id: str, state_dir: StateDir = None) -> None:
    """Print one trace, span by span, from the local trace collector."""
    from .traces import read_trace, tree_lines

    spans = read_trace(_stack(state_dir).state_dir / "traces.jsonl", trace_id)
    if not spans:
        _fail(f"no spans for trace {trace_id} (yet)")
    for line in tree_lines(spans):
        typer.echo(line)
