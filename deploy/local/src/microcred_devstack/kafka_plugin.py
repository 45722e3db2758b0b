"""The broker's audit plugin (deploy/kafka-audit): compiled once per source version, cached.

`ca.microcred.kafka.AuditingAuthorizer` is Kafka's StandardAuthorizer plus a JSON line per
denial, and it installs a SCRAM server wrapper that records failed logins with the user name
they tried (ADR 13). It is compiled with `javac` against the broker's own cached jars, so it
needs no network; the jar is named by a hash of its sources and the Kafka version, so an
edited source is never run stale.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from .kafka_jars import KAFKA_VERSION, KafkaError, cache_dir

PLUGIN_DIR = Path(__file__).resolve().parents[3] / "kafka-audit"
SOURCES = PLUGIN_DIR / "src" / "main" / "java"
AUTHORIZER = "ca.microcred.kafka.AuditingAuthorizer"
AUDIT_LOG = "kafka-audit.jsonl"  # in the node's log folder (deploy/local/kafka/log4j2.xml)


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256(KAFKA_VERSION.encode())
    for path in files:
        digest.update(str(path.relative_to(SOURCES)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_audit_plugin(lib: Path) -> Path:
    """Return the plugin jar, compiling it against `lib` (Kafka's jars) when not cached."""
    files = sorted(SOURCES.rglob("*.java"))
    jar = cache_dir() / f"kafka-audit-{KAFKA_VERSION}-{_fingerprint(files)}.jar"
    if jar.is_file():
        return jar
    if shutil.which("javac") is None:
        raise KafkaError("compiling the broker audit plugin needs `javac` (a JDK 17)")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with open(jar.parent / ".kafka-audit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.is_file():
            return jar
        with tempfile.TemporaryDirectory() as out:
            cmd = ["javac", "--release", "17", "-nowarn", "-cp", f"{lib}/*", "-d", out,
                   *map(str, files)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise KafkaError(f"compiling {PLUGIN_DIR} failed:\n{result.stderr}")
            partial = jar.with_suffix(f".partial-{os.getpid()}")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for cls in sorted(Path(out).rglob("*.class")):
                    archive.write(cls, cls.relative_to(out).as_posix())
            partial.rename(jar)  # whole or not at all
    return jar
