"""Developer tools the local stack runs beside the services: a mail sink that keeps every
learner e-mail as a file, and a trace collector that keeps every span (OTLP/HTTP) as JSON
lines, so `make demo` can show mail sent and a whole trace without any other software."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .config import REPO_ROOT
from .processes import HOST, ServiceProcess, free_port, port_is_free, port_open

TOOLS = ("mailsink", "traces")
DEFAULT_PORTS = {"mailsink": 8025, "traces": 4318}


def _ports_file(state_dir: Path) -> Path:
    return state_dir / "tools.json"


def ports(state_dir: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(_ports_file(state_dir).read_text()).items()}
    except (OSError, ValueError):
        return {}


def process(state_dir: Path, name: str, port: int) -> ServiceProcess:
    argv = {
        "mailsink": [sys.executable, "-m", "microcred_testkit.mailsink", "--port", str(port),
                     "--dir", str(state_dir / "mail")],
        "traces": [sys.executable, "-m", "microcred_devstack.traces", "--port", str(port),
                   "--file", str(state_dir / "traces.jsonl")],
    }[name]
    return ServiceProcess(name, argv, {}, state_dir / "logs" / f"{name}.log",
                          state_dir / "pids" / f"{name}.pid", cwd=REPO_ROOT)


def start(state_dir: Path, base_env: dict[str, str]) -> dict[str, int]:
    """Start the tools that are not running; returns their ports."""
    import os
    import time

    known = ports(state_dir)
    chosen: dict[str, int] = {}
    for name in TOOLS:
        port = known.get(name) or DEFAULT_PORTS[name]
        proc = process(state_dir, name, port)
        if not proc.is_alive():
            if not port_is_free(port):
                port = free_port()
                proc = process(state_dir, name, port)
            proc.env = {**os.environ, **base_env, "PYTHONUNBUFFERED": "1"}
            proc.start()
        chosen[name] = port
    _ports_file(state_dir).write_text(json.dumps(chosen))
    deadline = time.monotonic() + 30
    for name, port in chosen.items():
        while not port_open(port) and time.monotonic() < deadline:
            if not process(state_dir, name, port).is_alive():
                raise RuntimeError(f"{name} exited; see {state_dir / 'logs' / (name + '.log')}")
            time.sleep(0.2)
    return chosen


def running(state_dir: Path) -> dict[str, int]:
    return {n: p for n, p in ports(state_dir).items() if process(state_dir, n, p).is_alive()}


def env(state_dir: Path) -> dict[str, str]:
    """Settings that point the services at the running tools (none when not running)."""
    live = running(state_dir)
    out: dict[str, str] = {}
    if "mailsink" in live:
        out.update(MICROCRED_SMTP_HOST=HOST, MICROCRED_SMTP_PORT=str(live["mailsink"]))
    if "traces" in live:
        out.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{HOST}:{live['traces']}",
                   OTEL_BSP_SCHEDULE_DELAY="500")
    return out


def stop(state_dir: Path) -> list[str]:
    stopped = []
    for name, port in ports(state_dir).items():
        proc = process(state_dir, name, port)
        if proc.is_alive():
            stopped.append(name)
        proc.terminate()
    return stopped


def rows(state_dir: Path) -> list[dict[str, Any]]:
    out = []
    for name, port in ports(state_dir).items():
        proc = process(state_dir, name, port)
        out.append({"name": name, "running": proc.pid is not None, "pid": proc.pid,
                    "address": f"{'smtp' if name == 'mailsink' else 'http'}://{HOST}:{port}",
                    "log": str(proc.log_file)})
    return out
