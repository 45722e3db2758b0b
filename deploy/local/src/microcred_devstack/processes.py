"""Background processes: ports, pid files and the `ServiceProcess` wrapper.

Everything the devstack starts must outlive the `up` command that started it and be found
again by `down`, so each process runs in its own session (no terminal signals reach it) and is
remembered in a pid file holding its pid *and* its start time: a pid alone can be reused by an
unrelated process after a reboot or a crash, and `down` must never signal a stranger.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

HOST = "127.0.0.1"


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux; its default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now, below the kernel's ephemeral range.

    A server stopped or killed by a test is started again on its port, and the clients that
    know it keep that address. A port the OS picks (`bind(0)`) lies in the ephemeral range,
    where any client socket opened meanwhile (a database connection, the clients retrying
    the dead server itself) may be given it, and then the server cannot have it back. Below
    the range no client socket is ever placed. A tiny race with other programs is accepted;
    one process never gets the same port twice."""
    low, _ = _ephemeral_range()
    first = max(1024, low - 12_000)
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(first, low)
        if port not in _HANDED_OUT and port_is_free(port, host):
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could bind host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers (postgres, the JVM) bind with SO_REUSEADDR, so a port that only has
        # TIME_WAIT leftovers from a server we just stopped counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(port: int, timeout: float = 30.0, host: str = HOST) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(port, host):
            return True
        time.sleep(0.2)
    return not port_open(port, host)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages ("" when there is no file)."""
    try:
        data = path.read_bytes()[-64_000:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# --- pid files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float  # psutil's process start time: tells our process from a reused pid

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None if it is gone (or the pid was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def is_alive(self) -> bool:
        return self.process() is not None


def write_pid_file(path: Path, pid: int) -> PidRecord:
    record = PidRecord(pid, psutil.Process(pid).create_time())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": record.pid, "create_time": record.create_time}))
    return record


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        raw = json.loads(path.read_text())
        return PidRecord(int(raw["pid"]), float(raw["create_time"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_pid(record: PidRecord | None, timeout: float = 20.0) -> bool:
    """SIGTERM the process group (children too), wait, then SIGKILL. True if it was running."""
    proc = record.process() if record else None
    if proc is None:
        return False
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:
            pass
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Our processes lead their own session, so the group id is their pid; signalling the group
    # also reaches children (e.g. a service's reloader) that would otherwise be orphaned.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def spawn(
    argv: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a detached process (own session) with stdout and stderr appended to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


# --- services ----------------------------------------------------------------------------


class ServiceError(RuntimeError):
    """A service died or did not become healthy; the message carries its log tail."""


class ServiceProcess:
    """One microcred service (`python -m microcred_<name>`) run in the background.

    Works both for a process this object started and for one found again from its pid file
    (a second `up`, or `down`), hence the pid-file based liveness instead of Popen only.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        pid_file: Path,
        cwd: Path | None = None,
        cafile: Path | None = None,
    ) -> None:
        self.name = name
        self.cafile = cafile  # the CA of its https certificate (the registry's: ADR 22)
        self.argv = list(argv)
        self.env = dict(env)
        self.log_file = log_file
        self.pid_file = pid_file
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        record = read_pid_file(self.pid_file)
        return record.pid if record and record.is_alive() else None

    def is_alive(self) -> bool:
        if self._popen is not None and self._popen.poll() is not None:
            return False  # reaps our own child so that it does not linger as a zombie
        record = read_pid_file(self.pid_file)
        return bool(record and record.is_alive())

    def start(self) -> ServiceProcess:
        if self.is_alive():
            return self
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%F %T')} starting {' '.join(self.argv)}\n".encode())
        self._popen = spawn(self.argv, self.log_file, self.env, self.cwd)
        write_pid_file(self.pid_file, self._popen.pid)
        return self

    def wait_healthy(self, url: str, timeout: float = 60.0) -> None:
        """Poll url until it answers 200; raise ServiceError (with the log tail) otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        context = ssl.create_default_context(cafile=str(self.cafile)) if self.cafile else None
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise ServiceError(
                    f"{self.name} exited before it was healthy; last log lines of "
                    f"{self.log_file}:\n{tail(self.log_file)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError) as err:
                last = str(err)
            time.sleep(0.3)
        raise ServiceError(
            f"{self.name} not healthy at {url} after {timeout:.0f}s ({last}); last log lines of "
            f"{self.log_file}:\n{tail(self.log_file)}"
        )

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send sig to the service (default SIGKILL: a crash, for reliability tests)."""
        record = read_pid_file(self.pid_file)
        proc = record.process() if record else None
        if proc is None:
            return
        _signal_group(proc.pid, sig)
        if sig == signal.SIGKILL:
            try:
                proc.wait(10)
            except psutil.TimeoutExpired:
                pass
            if self._popen is not None:
                self._popen.poll()

    def terminate(self, timeout: float = 20.0) -> None:
        """Graceful stop: SIGTERM, wait, SIGKILL fallback; then forget the pid file."""
        stop_pid(read_pid_file(self.pid_file), timeout)
        if self._popen is not None:
            self._popen.poll()
        self.pid_file.unlink(missing_ok=True)
