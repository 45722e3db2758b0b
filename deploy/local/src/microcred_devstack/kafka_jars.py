"""The Kafka broker's classpath: fetched once from Maven Central with Maven, then cached.

There is no Kafka download site on our machines, only Maven Central: the broker's jars are
collected with `mvn dependency:copy-dependencies` (deploy/local/kafka/pom.xml) into a cache
folder outside git, `${MICROCRED_CACHE_DIR:-~/.cache/microcred}/kafka-<version>/lib`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

KAFKA_VERSION = "4.3.1"
KAFKA_DIR = Path(__file__).resolve().parents[2] / "kafka"  # deploy/local/kafka (pom, log4j2)
POM = KAFKA_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_DIR / "log4j2.xml"
HEAP_OPTS = ["-Xms256m", "-Xmx512m"]  # modest: broker, PG and four services share 2 cores


class KafkaError(RuntimeError):
    """Kafka could not be fetched, formatted, started or used."""


def cache_dir() -> Path:
    return Path(os.environ.get("MICROCRED_CACHE_DIR") or Path.home() / ".cache" / "microcred")


def _jars_fingerprint() -> str:
    # The cache is valid for exactly this dependency set: a changed pom (a new dependency)
    # invalidates it instead of silently running an old classpath. Comments and layout are
    # left out so that editing prose in the pom does not force a refetch (or break offline).
    pom = re.sub(r"<!--.*?-->|\s+", "", POM.read_text(), flags=re.S)
    return hashlib.sha256(f"{KAFKA_VERSION}\n{pom}".encode()).hexdigest()


def ensure_kafka_jars() -> Path:
    """Return the folder with Kafka's runtime jars, fetching them with Maven on first use.

    Maven copies into a fresh folder that is renamed into place, and the marker file is
    written only after that, so an interrupted fetch is never mistaken for a classpath; a
    filled cache needs no network. A file lock serialises concurrent first runs.
    """
    home = cache_dir() / f"kafka-{KAFKA_VERSION}"
    lib, marker = home / "lib", home / "COMPLETE"
    fingerprint = _jars_fingerprint()

    def cached() -> bool:
        return marker.is_file() and marker.read_text().strip() == fingerprint and lib.is_dir()

    if cached():
        return lib
    if shutil.which("mvn") is None:
        raise KafkaError("Kafka jars are not cached and `mvn` is not installed (apt: maven)")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached():  # another process fetched them while we waited
            return lib
        marker.unlink(missing_ok=True)
        staging = home / f"lib.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
               f"-Dkafka.version={KAFKA_VERSION}"]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=KAFKA_DIR)
        if result.returncode != 0 or not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaError(f"fetching Kafka jars failed:\n{result.stdout}\n{result.stderr}")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        marker.write_text(fingerprint + "\n")
    return lib


def java_cmd(lib: Path, main: str, *args: str, log_dir: Path | None = None,
             extra_jars: tuple[Path, ...] = ()) -> list[str]:
    """The `java` command line for a Kafka main class on the cached classpath."""
    props = [f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"]
    if log_dir is not None:
        props.append(f"-Dkafka.logs.dir={log_dir}")
    return [
        "java",
        *HEAP_OPTS,
        # The serial collector, not G1: one small broker on 2 shared cores. Measured side by
        # side in bench/e2e (issue 12): the broker's CPU per credential 1.42 -> 1.12 ms and
        # 1.17 -> 1.06 ms (less JIT work and request handling without G1's barriers and
        # concurrent threads); its young-generation pauses are milliseconds on this heap.
        "-XX:+UseSerialGC",
        # C2 (tier 4) only for code four times hotter than HotSpot's default thresholds; C1
        # and its profiling stay as they are. A freshly started broker (every test session,
        # `make up`, bench/e2e) spent more CPU in its C2 compiler thread than in handling
        # requests. Measured side by side with main in bench/e2e (wave 13, issue 12): the
        # broker's CPU per credential at 500/s offered 0.59/0.58 -> 0.48/0.47 ms and
        # 0.80/0.49 -> 0.61/0.39 ms and 0.52/0.36 -> 0.47/0.35 ms, its JIT share 0.13-0.38
        # -> 0.05-0.12 ms; in a burst of 5,000 0.56 -> 0.45 ms. Its C2 thread 5.4 -> 2.0 s and
        # 3.9 -> 1.7 s per run, its request handlers 0.4-0.8 s more (longer in C1's profiled
        # code). Dropped: -XX:-TieredCompilation (the interpreter ate the saving) and fewer
        # network/io/background threads (no measurable change).
        "-XX:Tier4InvocationThreshold=20000", "-XX:Tier4MinInvocationThreshold=2400",
        "-XX:Tier4CompileThreshold=60000", "-XX:Tier4BackEdgeThreshold=160000",
        "-Djava.awt.headless=true",
        *props,
        "-cp",
        os.pathsep.join([f"{lib}/*", *map(str, extra_jars)]),
        main,
        *args,
    ]
