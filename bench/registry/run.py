"""The registry at scale: p50/p99 of what it serves at 10k, 1M and 10M stored credentials.

    uv run python bench/registry/run.py [--sizes 10000,1000000,10000000] [--requests 400]
                                        [--keep] [--state DIR]

Starts the embedded PostgreSQL of the devstack (microcred_devstack.postgres, as the test
fixtures do; or the server in DATABASE_URL) in its own state folder, creates a fresh
`bench_registry` database with the registry's MIGRATIONS, and the registry service's HTTP
app (bench/registry/serve.py) against it. Then, size by size, it loads credentials with
COPY (documents as issuance builds and signs them, 20 providers, 5 definitions each, ten
credentials per learner, one in ten made public; bench/registry/data.py), VACUUMs and ANALYZEs, and
times one request at a time, each for a row picked at random over the whole table:

  GET /v1/credentials/{id}                 the signed JSON (operator token)
  GET /v1/credentials/{id}/verification    live verification (signature, issuer, status)
  GET /v1/learners/{key}/credentials       a learner's listing (operator)
  GET /v1/credentials/{id} (text/html)     the public page of a public credential
  status change                            a revocation as the registry applies it: the
                                           CredentialStatusChanged record through the
                                           service's consumer (inbox, handler, one commit)
  GET /status/{provider}/{purpose}/{n}     a signed status list

and prints one table. The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

from microcred_devstack.postgres import start_postgres  # noqa: E402
from microcred_devstack.processes import free_port  # noqa: E402
from microcred_registry.credentials import handlers as credentials  # noqa: E402
from microcred_registry.migrations import MIGRATIONS  # noqa: E402
from microcred_shared.consumer import BatchConsumer  # noqa: E402
from microcred_shared.contract import topics  # noqa: E402
from microcred_shared.contract.cloudevents import encode, new_envelope  # noqa: E402
from microcred_shared.contract.events import CredentialStatusChanged  # noqa: E402
from microcred_shared.db import make_engine, migrate  # noqa: E402
from microcred_shared.settings import database_url_for  # noqa: E402
from microcred_shared.vc import keys, proofs, statuslist  # noqa: E402
from microcred_testkit.machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DB = "bench_registry"
TOKEN = "bench-operator-token-" + uuid.uuid4().hex
CHUNK = 100_000  # rows per COPY transaction
SIGNED_PER_SIZE = 300  # rows of each size step signed for real (verification samples)
# A production-sized server, not the devstack's defaults (128 MB of shared buffers). Only
# settings an operator sets in postgresql.conf; nothing here changes the schema.
# shared_buffers: a sixth of the machine's 24 GiB (the usual advice is a quarter). On this
# VM the page cache is no cache to count on: its memory manager (DAMON reclaim) pages out
# whatever was not touched for about a minute, so the server's own buffers are what keeps
# the indexes every read descends (PREWARM) in memory.
SERVER_SETTINGS = {
    "shared_buffers": "4GB", "effective_cache_size": "12GB", "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB", "checkpoint_timeout": "15min",
    "random_page_cost": "1.1", "effective_io_concurrency": "200",
}


def machine() -> str:
    model = cpu_model()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs, {model}, {mem:.0f} GiB RAM"


def busy() -> str:
    load1, load5, _ = os.getloadavg()
    return f"load average {load1:.2f} (1 min), {load5:.2f} (5 min) on {os.cpu_count()} CPUs"


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


# --- the server -------------------------------------------------------------------------


async def tune(server_url: str, settings: dict[str, str]) -> bool:
    """Apply `settings` (SERVER_SETTINGS and --pg-set); True when a restart is needed for
    them to take effect (a setting read at server start whose value differs)."""
    conn = await asyncpg.connect(server_url)
    try:
        restart = False
        for name, value in settings.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
        for name in settings:
            row = await conn.fetchrow(
                "SELECT context, pending_restart FROM pg_settings WHERE name = $1", name)
            restart = restart or (row["context"] == "postmaster" and row["pending_restart"])
        return restart
    finally:
        await conn.close()


async def untune(server_url: str, names: list[str]) -> None:
    """--pg-set's settings back to the server's defaults (ALTER SYSTEM keeps them in the
    state folder's configuration otherwise, for every later run)."""
    if not names:
        return
    conn = await asyncpg.connect(server_url)
    try:
        for name in names:
            await conn.execute(f"ALTER SYSTEM RESET {name}")
    finally:
        await conn.close()


async def fresh_database(server_url: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB}")
    finally:
        await conn.close()
    return database_url_for(server_url, DB)


async def drop_database(server_url: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    finally:
        await conn.close()


def start_registry(db_url: str, port: int, log_file: Path,
                   source: Path | None = None) -> subprocess.Popen[bytes]:
    """The registry's app under uvicorn; `source`: a checkout whose services/registry/src
    and shared/src are imported instead of this one's (the code compared with)."""
    env = {**os.environ, "MICROCRED_REGISTRY_DATABASE_URL": db_url,
           "MICROCRED_REGISTRY_HTTP_PORT": str(port), "MICROCRED_PUBLIC_BASE_URL": data.BASE,
           "MICROCRED_OPERATOR_TOKEN": TOKEN, "OTEL_SDK_DISABLED": "true"}
    env.pop("DATABASE_URL", None)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            str(source / part) for part in ("services/registry/src", "shared/src"))
    out = log_file.open("ab")
    return subprocess.Popen([sys.executable, str(Path(__file__).parent / "serve.py")],
                            env=env, stdout=out, stderr=out, cwd=REPO)


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"the registry exited ({proc.returncode}); see its log")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the registry did not become ready")


# --- loading ----------------------------------------------------------------------------


def pg_dsn(db_url: str) -> str:
    return db_url.replace("postgresql+asyncpg://", "postgresql://")


async def seed_issuers(conn: asyncpg.Connection) -> None:
    """The issuer-keys projection: each provider's did:web key, as issuance publishes it."""
    now = datetime(2021, 12, 1, tzinfo=UTC)
    for p in range(data.PROVIDERS):
        prov = data.provider(p)
        from microcred_issuance.issuing import credential

        profile = credential.issuer_profile(prov, data.BASE)
        key = {"key_id": "key-1", "status": "active", "created_at": now.isoformat(),
               "public_multikey": keys.multikey_encode(data.private_key(p).public_key())}
        await conn.execute(
            "INSERT INTO issuers (provider_id, profile, keys, updated_at) "
            "VALUES ($1, $2::jsonb, $3::jsonb, $4) ON CONFLICT DO NOTHING",
            prov.id, _json(profile), _json([key]), now)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def publish_lists(conn: asyncpg.Connection, rows: int) -> int:
    """Signed status lists for every list `rows` rows point into (what issuance publishes
    and the registry projects); returns how many exist."""
    from microcred_issuance.status.domain import list_url

    count = 0
    now = datetime(2021, 12, 1, tzinfo=UTC)
    encoded = statuslist.encode_list(data.statuslist_bits())
    for p in range(data.PROVIDERS):
        for list_no in range(data.status_lists_needed(rows)):
            for purpose in statuslist.PURPOSES:
                url = list_url(data.BASE, data.provider_id(p), purpose, list_no)
                count += 1
                if await conn.fetchval("SELECT 1 FROM status_lists WHERE url = $1", url):
                    continue
                signed = proofs.sign(statuslist.status_list_credential(
                    url=url, issuer=data.issuer(p), purpose=purpose,  # type: ignore[arg-type]
                    encoded_list=encoded, valid_from=now), data.private_key(p),
                    data.verification_method(p), created=now)
                await conn.execute(
                    "INSERT INTO status_lists (url, provider_id, version, credential, "
                    "published_at) VALUES ($1, $2, 1, $3::jsonb, $4)",
                    url, data.provider_id(p), _json(signed), now)
    return count


async def load(dsn: str, templates: data.Templates, start: int, end: int,
               signed_rows: list[int], deadline: datetime | None,
               workers: int = 1) -> tuple[float, int]:
    """COPY rows [start, end) in chunks (each its own transaction), `workers` chunks at a
    time (each on its own connection, taken in order); the rows in `signed_rows` carry
    documents signed for real. Stops taking chunks once `deadline` has passed (the chunks
    under way finish: the rows loaded stay one range). Returns (seconds taken, rows now
    loaded)."""
    began = time.perf_counter()
    chunks = iter(range(start, end, CHUNK))
    reached = [end]

    async def worker() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for lo in chunks:
                if deadline is not None and datetime.now(UTC) >= deadline:
                    reached[0] = min(reached[0], lo)
                    for _ in chunks:  # no other worker takes one either
                        pass
                    return
                await load_chunk(conn, templates, lo, min(end, lo + CHUNK), signed_rows)
                hi = min(end, lo + CHUNK)
                if (hi // CHUNK) % 10 == 0 or hi == end:
                    rate = (hi - start) / (time.perf_counter() - began)
                    log(f"  loaded {hi:,} rows ({rate:,.0f} rows/s)")
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    if reached[0] < end:
        log(f"  deadline reached: loading stopped at {reached[0]:,} rows, not {end:,}")
    end = reached[0]
    conn = await asyncpg.connect(dsn)
    try:
        # What autovacuum would do in the background after a bulk load (set the visibility
        # map, gather statistics), done now so that it does not run during the measurement.
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    return time.perf_counter() - began, end


async def autovacuum_done(dsn: str, limit_s: float = 900) -> None:
    """Wait (up to `limit_s`) until no autovacuum worker runs: one that reads tens of
    gigabytes during the measurement would be measured with it."""
    conn = await asyncpg.connect(dsn)
    began = time.perf_counter()
    try:
        while time.perf_counter() - began < limit_s:
            running = await conn.fetch(
                "SELECT query FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            if not running:
                break
            log(f"  waiting for autovacuum: {', '.join(r['query'] for r in running)}")
            await asyncio.sleep(15)
    finally:
        await conn.close()


# What every read descends (the credential's primary key, who may see it, a learner's
# index, the status lists and issuers): a registry that has been serving has these in the
# server's memory. The credentials themselves (25 GB at 10M) are not prewarmed: a read of
# one not read lately comes from the disk, as it would.
PREWARM = ("credentials_pkey", "ix_credentials_learner_key", "credential_visibility",
           "credential_visibility_pkey", "status_lists", "status_lists_pkey", "issuers",
           "issuers_pkey")


async def prewarm(dsn: str) -> str:
    """PREWARM into shared_buffers (pg_prewarm): a server restarted for the benchmark
    starts with empty buffers, and this machine's memory manager also takes back page
    cache not used for a minute or so (DAMON reclaim), so without this the first minute
    of every run measures the disk, not the registry."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        blocks = 0
        for name in PREWARM:
            if await conn.fetchval("SELECT to_regclass($1)", name) is not None:
                blocks += await conn.fetchval("SELECT pg_prewarm($1::regclass)", name)
        return f"{blocks * 8 / 1024:,.0f} MiB of indexes and small tables prewarmed"
    finally:
        await conn.close()


async def load_chunk(conn: asyncpg.Connection, templates: data.Templates, lo: int, hi: int,
                     signed_rows: list[int]) -> None:
    """Rows [lo, hi) in one transaction: the credentials (those in `signed_rows` signed
    for real, and noted in `bench_signed`), and the visibility of the public ones."""
    signed = sorted(r for r in signed_rows if lo <= r < hi)
    skip = set(signed)

    async def lines() -> AsyncIterator[bytes]:
        batch: list[str] = []
        for line in data.copy_lines(templates, lo, hi, skip):
            batch.append(line)
            if len(batch) == 2000:
                yield "".join(batch).encode()
                batch = []
                await asyncio.sleep(0)
        for i in signed:
            r = data.row(i)
            batch.append(data.credentials_line(r, _json(data.signed(r))))
        if batch:
            yield "".join(batch).encode()

    async def visibility() -> AsyncIterator[bytes]:
        now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
        first = lo + (3 - lo) % data.PUBLIC_SHARE
        out = [f"{data.credential_id(i)}\t{data.learner_key_of(data.learner_of(i))}"
               f"\tpublic\t[]\t{{}}\t{now}\n"
               for i in range(first, hi, data.PUBLIC_SHARE)]
        yield "".join(out).encode()

    async with conn.transaction():
        await conn.copy_to_table("credentials", source=lines(),
                                 columns=data.CREDENTIAL_COLUMNS)
        await conn.copy_to_table("credential_visibility", source=visibility(), columns=(
            "credential_id", "learner_key", "visibility", "shared_with",
            "shared_since", "updated_at"))
        await conn.executemany("INSERT INTO bench_signed (i) VALUES ($1)",
                               [(i,) for i in signed])


async def signed_rows_of(dsn: str, rows: int) -> list[int]:
    """The rows signed for real in a database kept from an earlier run (`bench_signed`;
    for one loaded before that table, found by their salt, which template rows do not
    share: a scan, once)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_signed (i bigint PRIMARY KEY)")
        found = [r["i"] for r in await conn.fetch("SELECT i FROM bench_signed ORDER BY i")]
        if found:
            return found
        log("  finding the rows signed for real (a database from before bench_signed)")
        index = {data.credential_id(i): i for i in range(rows)}
        salts = await conn.fetch(
            "SELECT credential_id, document #>> '{credentialSubject,identifier,0,salt}' AS s "
            "FROM credentials")
        found = sorted(index[r["credential_id"]] for r in salts
                       if r["credential_id"] in index and r["s"] == data.signed_salt(
                           index[r["credential_id"]]))
        await conn.executemany("INSERT INTO bench_signed (i) VALUES ($1)",
                               [(i,) for i in found])
        return found
    finally:
        await conn.close()


async def sizes_on_disk(dsn: str, rows: int) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT pg_database_size(current_database())")
        table = await conn.fetchval("SELECT pg_total_relation_size('credentials')")
        heap, toast = await conn.fetchrow(
            "SELECT pg_relation_size(oid), pg_relation_size(reltoastrelid) "
            "FROM pg_class WHERE relname = 'credentials'")
        return f"database {total / 2**30:.1f} GiB (credentials with TOAST and indexes " \
               f"{table / 2**30:.1f} GiB; its heap {heap / 2**30:.2f} GiB, its TOAST " \
               f"relation {toast / 2**20:.1f} MiB, {toast / max(rows, 1):.1f} B per row)"
    finally:
        await conn.close()


# --- measuring --------------------------------------------------------------------------


async def timed(n: int, one: Callable[[int], Awaitable[None]]) -> list[float]:
    out = []
    for k in range(n):
        began = time.perf_counter()
        await one(k)
        out.append((time.perf_counter() - began) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pg_cpu(postmaster: int | None) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster and every backend it forked."""
    if postmaster is None:
        return 0.0
    return cpu_seconds(postmaster) + sum(cpu_seconds(pid) for pid in children(postmaster))


def children(parent: int) -> list[int]:
    """The processes `parent` forked (for PostgreSQL's postmaster: its backends and helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(stat[1]) == parent:
                found.append(int(entry.name))
    return found


# size -> code ("this", "base") -> case -> (service, PostgreSQL) CPU ms per request
CPU: dict[int, dict[str, dict[str, tuple[float, float]]]] = {}
BLOCKS = 4  # each case is timed in this many blocks per registry, the registries taking turns


async def measure(registries: dict[str, tuple[httpx.AsyncClient, int]], engine: Any, rows: int,
                  signed: list[int], n: int, rng: random.Random,
                  postmaster: int | None, status_handlers: dict[str, Any] | None = None,
                  cases: str | None = None) -> dict[str, dict[str, list[float]]]:
    """Every case against every registry in `registries` (code label: its client and pid),
    the registries taking turns in blocks so that both see the same machine.
    `status_handlers`: a compared code's status-change handler, by label (default: this
    checkout's)."""
    status_handlers = status_handlers or {}
    auth = {"authorization": f"Bearer {TOKEN}"}

    def ok(r: httpx.Response, what: str) -> None:
        if r.status_code != 200:
            raise SystemExit(f"{what}: {r.status_code} {r.text[:300]}")

    wanted = [w.strip().lower() for w in cases.split(",")] if cases else None

    def chosen(name: str) -> bool:
        return wanted is None or any(w in name.lower() for w in wanted)

    def requests(client: httpx.AsyncClient) -> dict[str, Callable[[int], Awaitable[None]]]:
        async def get_json(_: int) -> None:
            cid = data.credential_id(rng.randrange(rows))
            r = await client.get(f"/v1/credentials/{cid}", headers=auth)
            ok(r, "GET credential")
            assert r.json()["id"] == f"urn:uuid:{cid}"

        async def verification(k: int) -> None:
            cid = data.credential_id(signed[k % len(signed)])
            r = await client.get(f"/v1/credentials/{cid}/verification", headers=auth)
            ok(r, "verification")
            body = r.json()
            if not body["verified"]:
                raise SystemExit(f"verification failed: {body}")

        async def listing(_: int) -> None:
            learner = data.learner_of(rng.randrange(rows))
            r = await client.get(f"/v1/learners/{data.learner_key_of(learner)}/credentials",
                                 headers=auth)
            ok(r, "listing")
            if r.json()["count"] < 1:
                raise SystemExit("a learner without credentials")

        async def page(_: int) -> None:
            i = rng.randrange(rows // data.PUBLIC_SHARE) * data.PUBLIC_SHARE + 3
            r = await client.get(f"/v1/credentials/{data.credential_id(i)}",
                                 headers={"accept": "text/html"})
            ok(r, "public page")
            assert "text/html" in r.headers["content-type"]

        async def status_list(_: int) -> None:
            p = rng.randrange(data.PROVIDERS)
            list_no = rng.randrange(data.status_lists_needed(rows))
            purpose = rng.choice(statuslist.PURPOSES)
            r = await client.get(f"/status/{data.provider_id(p)}/{purpose}/{list_no}")
            ok(r, "status list")

        return {
            "GET /v1/credentials/{id}": get_json,
            "GET .../{id}/verification": verification,
            "GET /v1/learners/{key}/credentials": listing,
            "public page (text/html)": page,
            "GET /status/{p}/{purpose}/{n}": status_list,
        }

    def status_change_with(handler: Any) -> Callable[[int], Awaitable[None]]:
        consumer = BatchConsumer(service="registry", engine=engine, handler=handler,
                                 expected=CredentialStatusChanged)

        async def status_change(_: int) -> None:
            i = rng.randrange(rows)
            r = data.row(i)
            event = CredentialStatusChanged(
                credential_id=r.credential_id, provider_id=data.provider_id(r.provider),
                learner_key=data.learner_key_of(r.learner), status="revoked",
                action="revoke", reason="issued in error (benchmark)",
                changed_at=datetime.now(UTC))
            await consumer.apply([_record(event)])
        return status_change

    results: dict[str, dict[str, list[float]]] = {label: {} for label in registries}
    cpu = CPU.setdefault(rows, {})
    per_code = {label: requests(client) for label, (client, _) in registries.items()}
    names = [name for name in next(iter(per_code.values())) if chosen(name)]
    block = max(1, n // BLOCKS)
    for name in names:
        spent: dict[str, list[float]] = {label: [0.0, 0.0] for label in registries}
        for label in registries:
            await timed(min(20, n), per_code[label][name])  # warm-up
        for _ in range(BLOCKS):
            for label, (_, pid) in registries.items():
                s0, p0 = cpu_seconds(pid), pg_cpu(postmaster)
                results[label].setdefault(name, []).extend(
                    await timed(block, per_code[label][name]))
                spent[label][0] += cpu_seconds(pid) - s0
                spent[label][1] += pg_cpu(postmaster) - p0
        for label in registries:
            done = len(results[label][name])
            cpu.setdefault(label, {})[name] = (spent[label][0] / done * 1000,
                                               spent[label][1] / done * 1000)
    # The status change runs the registry's consumer in this process, with each compared
    # code's handler (`status_handlers`), taking turns in blocks like the requests.
    name = STATUS_CHANGE
    if not chosen(name):
        return results
    changes = {label: status_change_with(status_handlers.get(label,
                                                             credentials.on_status_changed))
               for label in registries}
    spent = {label: [0.0, 0.0] for label in registries}
    for label in registries:
        await timed(min(20, n), changes[label])
    for _ in range(BLOCKS):
        for label in registries:
            s0, p0 = time.process_time(), pg_cpu(postmaster)
            results[label].setdefault(name, []).extend(await timed(block, changes[label]))
            spent[label][0] += time.process_time() - s0
            spent[label][1] += pg_cpu(postmaster) - p0
    for label in registries:
        done = len(results[label][name])
        cpu.setdefault(label, {})[name] = (spent[label][0] / done * 1000,
                                           spent[label][1] / done * 1000)
    return results


_offsets = iter(range(10**12))


def _record(event: Any) -> Any:
    from aiokafka.structs import ConsumerRecord

    env = new_envelope(event, "/microcred/issuance")
    value = encode(event)
    return ConsumerRecord(topic=topics.CREDENTIAL_STATUS, partition=0, offset=next(_offsets),
                          timestamp=0, timestamp_type=0, key=event.key(), value=value,
                          checksum=None, serialized_key_size=-1,
                          serialized_value_size=len(value), headers=env.headers())


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_cpu() -> float:
    """CPU seconds every process on the machine has spent (/proc/stat: all but idle and
    I/O wait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def our_cpu(pids: list[int], postmaster: int | None) -> float:
    """CPU seconds of the processes measured: this driver, the registries, PostgreSQL."""
    return sum(cpu_seconds(pid) for pid in pids) + pg_cpu(postmaster)


class Priority:
    """--priority: the measured processes in a CPU cgroup of their own with `shares` weight
    (cgroup v1 `cpu.shares`; v2 `cpu.weight`), so that busy neighbours on a shared machine
    delay them as little as a host of their own would. PostgreSQL's postmaster and its
    processes are moved in, and the backends it forks later are born there."""

    def __init__(self, shares: int) -> None:
        v1 = Path("/sys/fs/cgroup/cpu")
        self.v1 = (v1 / "cgroup.procs").exists()
        root = v1 if self.v1 else Path("/sys/fs/cgroup")
        self.root, self.shares = root, shares
        self.path = root / f"microcred-bench-registry-{os.getpid()}"
        self.path.mkdir()
        if self.v1:
            (self.path / "cpu.shares").write_text(str(shares))
        else:
            (self.path / "cpu.weight").write_text(str(max(1, min(10000, shares * 100 // 1024))))

    def describe(self) -> str:
        return (f"cpu.shares {self.shares}" if self.v1 else
                f"cpu.weight {max(1, min(10000, self.shares * 100 // 1024))}") + \
            " (every other process: 1024)"

    def add(self, pids: list[int], postmaster: int | None) -> None:
        everyone = list(pids)
        if postmaster is not None:
            everyone += [postmaster, *children(postmaster)]
        for pid in everyone:
            try:
                (self.path / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass  # gone meanwhile

    def remove(self) -> None:
        """Every process back in the root group, then the group removed."""
        for _ in range(3):
            try:
                pids = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                return
            for pid in pids:
                try:
                    (self.root / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.2)


Table = dict[int, dict[str, dict[str, list[float]]]]  # size -> code -> case -> ms
STATUS_CHANGE = "status change (revoke)"  # a write: measured, not held to the reads' goal
P99_GOAL_MS = 10.0


def dump(path: Path, table: Table) -> None:
    path.write_text(json.dumps({str(size): codes for size, codes in table.items()}))


def print_table(table: Table, notes: dict[int, str]) -> None:
    """p50/p99 and CPU per request, per size and per code measured (`base`, then this
    checkout's)."""
    sizes = sorted(table)
    labels = list(next(iter(table.values())))
    names = list(next(iter(next(iter(table.values())).values())))
    columns = [(s, label) for s in sizes for label in labels]
    head = f"{'':36s}" + "".join(f"{f'{s:,} rows':>22s}" for s, _ in columns)
    if len(labels) > 1:
        head += "\n" + f"{'':36s}" + "".join(f"{label[:20]:>22s}" for _, label in columns)
    print("\np50 / p99 in ms, one request at a time")
    print(head)
    print(f"{'':36s}" + "".join(f"{'p50':>11s}{'p99':>11s}" for _ in columns))
    for name in names:
        line = f"{name:36s}"
        for s, label in columns:
            values = table[s][label][name]
            line += f"{statistics.median(values):11.2f}{pct(values, 0.99):11.2f}"
        print(line)
    for s, label in columns:  # issue 12, item 4: p99 <= 10 ms for every read
        over = [f"{name} {pct(table[s][label][name], 0.99):.2f}" for name in names
                if name != STATUS_CHANGE and pct(table[s][label][name], 0.99) > P99_GOAL_MS]
        count = min(len(table[s][label][name]) for name in names)
        print(f"  {s:,} rows{'' if len(labels) == 1 else ', ' + label}: every read's p99 "
              f"<= {P99_GOAL_MS:g} ms ({count:,} requests each): "
              + ("yes" if not over else "no: " + ", ".join(over)))
    print("\nCPU per request in ms: the service's / PostgreSQL's (survives busy neighbours)")
    print(head)
    for name in names:
        line = f"{name:36s}"
        for s, label in columns:
            service, pg = CPU.get(s, {}).get(label, {}).get(name, (0.0, 0.0))
            line += f"{service:11.2f}{pg:11.2f}"
        print(line)
    if len(labels) > 1:
        print("  (the status change runs in this process: this checkout's consumer with each "
              "column's handler)")
    for s in sizes:
        print(f"  {s:,} rows: {notes[s]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--requests", type=int, default=2000,
                        help="timed requests per case (the p99 is the 1/100 slowest: with "
                             "400 it is the 4th slowest request and moves by milliseconds "
                             "between runs; 2,000 is the default)")
    parser.add_argument("--state", default=str(REPO / ".state" / "bench-registry"))
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true",
                        help="measure a database kept by an earlier run (--keep), loading "
                             "only the rows it lacks")
    parser.add_argument("--compare", default=None, metavar="GIT-REF",
                        help="also measure the registry's code at this commit, side by side "
                             "(its services/registry/src and shared/src; the two take turns, "
                             "block by block)")
    parser.add_argument("--load-workers", type=int, default=2,
                        help="COPY transactions at a time while loading")
    parser.add_argument("--load-only", action="store_true",
                        help="load up to the largest size and keep the database, measuring "
                             "nothing (measure later, on a quiet machine, with --reuse)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--dump", default=None, metavar="FILE",
                        help="write every request's time (ms, in the order measured) to FILE "
                             "as JSON: size -> code -> case -> list")
    parser.add_argument("--cases", default=None, metavar="WORDS",
                        help="measure only the cases whose name contains one of these "
                             "comma-separated words (e.g. 'verification,status list')")
    parser.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE",
                        help="a PostgreSQL server setting besides SERVER_SETTINGS (the server "
                             "is restarted when it needs to be); repeatable")
    parser.add_argument("--priority", type=int, default=0, metavar="SHARES",
                        help="run the measured processes (registry, PostgreSQL, this driver) "
                             "in a CPU cgroup of this weight (cgroup v1 cpu.shares, v2 "
                             "cpu.weight x 10; every other process has 1024): how the "
                             "registry answers when its host is not shared, on a shared "
                             "machine (root)")
    parser.add_argument("--load-until", default=None, metavar="HH:MM",
                        help="UTC time after which no more rows are loaded: the last size is "
                             "measured at the rows reached (and says so)")
    args = parser.parse_args()
    args.keep = args.keep or args.load_only
    Path(args.state).mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args))


def status_handler_at(source: Path | None) -> Any:
    """The status-change handler of the registry's code at `source` (None: this checkout's),
    its module loaded under a name of its own (its imports are this checkout's)."""
    if source is None:
        return credentials.on_status_changed
    path = source / "services/registry/src/microcred_registry/credentials/handlers.py"
    spec = importlib.util.spec_from_file_location(f"compared_handlers_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.on_status_changed


def checkout(ref: str, state: Path) -> Path:
    """The registry's sources at `ref` and the shared package it runs on (verification,
    proofs, the middleware), extracted under `state` (git archive)."""
    out = state / f"compare-{ref.replace('/', '_')}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref, "services/registry/src", "shared/src"],
                             cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


async def rows_in(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM credentials"))
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    state = Path(args.state)
    print(f"machine: {machine()}; {busy()}")
    print(f"disk free at {state}: {shutil.disk_usage(state).free / 2**30:.0f} GiB")
    sources: dict[str, Path | None] = {}
    if args.compare:
        sources[args.compare] = checkout(args.compare, state)
    sources["this"] = None

    handle = start_postgres(state)
    try:
        if await tune(handle.url, {**SERVER_SETTINGS, **dict(
                kv.split("=", 1) for kv in args.pg_set)}) and handle.embedded:
            handle.stop()
            handle = start_postgres(state)
    except BaseException:
        handle.stop()
        raise
    db_url = database_url_for(handle.url, DB) if args.reuse else await fresh_database(handle.url)
    engine = make_engine(db_url, pool_size=2)
    await migrate(engine, MIGRATIONS)
    dsn = pg_dsn(db_url)
    conn = await asyncpg.connect(dsn)
    await seed_issuers(conn)
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_signed (i bigint PRIMARY KEY)")
    await conn.close()
    loaded = await rows_in(dsn) if args.reuse else 0
    kept = await signed_rows_of(dsn, loaded) if loaded else []
    if loaded:
        log(f"reusing {loaded:,} rows ({len(kept)} signed for real)")

    rng = random.Random(args.seed)
    table: Table = {}
    notes: dict[int, str] = {}
    templates = data.Templates()
    procs: list[subprocess.Popen[bytes]] = []
    group = Priority(args.priority) if args.priority else None
    try:
        deadline = None
        if args.load_until:
            hh, mm = (int(x) for x in args.load_until.split(":"))
            deadline = datetime.now(UTC).replace(hour=hh, minute=mm, second=0)
        for size in sizes:
            if size < loaded:
                log(f"{size:,} rows: the database holds {loaded:,} already; not measured")
                continue
            if deadline is not None and datetime.now(UTC) >= deadline and size > loaded:
                log(f"deadline {args.load_until} UTC passed: {size:,} rows not measured")
                break
            signed = sorted(rng.sample(range(loaded, size), min(SIGNED_PER_SIZE,
                                                                 size - loaded)))
            seconds = 0.0
            if size > loaded:
                log(f"loading rows {loaded:,}..{size:,} ({args.load_workers} at a time)")
                seconds, size = await load(dsn, templates, loaded, size, signed, deadline,
                                           args.load_workers)
            signed = [i for i in signed if i < size]
            kept += signed
            conn = await asyncpg.connect(dsn)
            lists = await publish_lists(conn, size)
            await conn.close()
            rate = f"{(size - loaded) / seconds:,.0f} rows/s" if seconds else "none loaded"
            loaded = size
            disk = await sizes_on_disk(dsn, size)
            if args.load_only:
                log(f"loaded in {seconds:,.0f} s ({rate}); {disk}; {lists} status lists; "
                    "not measured (--load-only)")
                continue
            log(f"loaded in {seconds:,.0f} s ({rate}); {disk}; {lists} status lists; "
                "measuring")
            await autovacuum_done(dsn)
            warm = await prewarm(dsn)
            log(f"  {warm}")
            # Fresh registry processes for every size: the code measured is the code of now.
            registries: dict[str, tuple[httpx.AsyncClient, int]] = {}
            clients = []
            for label, source in sources.items():
                port = free_port()
                proc = start_registry(db_url, port, state / f"registry-{label}.log", source)
                procs.append(proc)
                client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
                clients.append(client)
                await wait_ready(client, proc)
                registries[label] = client, proc.pid
            ours = [os.getpid(), *(pid for _, pid in registries.values())]
            if group is not None:
                group.add(ours, handle.pid)
            t0 = time.perf_counter()
            cpu0 = {label: cpu_seconds(pid) for label, (_, pid) in registries.items()}
            machine0, ours0 = machine_cpu(), our_cpu(ours, handle.pid)
            try:
                table[size] = await measure(registries, engine, size, kept, args.requests,
                                            rng, handle.pid, {
                                                label: status_handler_at(source)
                                                for label, source in sources.items()},
                                            cases=args.cases)
            finally:
                for client in clients:
                    await client.aclose()
            wall = time.perf_counter() - t0
            others = (machine_cpu() - machine0) - (our_cpu(ours, handle.pid) - ours0)
            share = ", ".join(f"{label} {(cpu_seconds(pid) - cpu0[label]) / wall * 100:.0f}%"
                              for label, (_, pid) in registries.items())
            notes[size] = (f"{disk}; {warm}; load {seconds:,.0f} s ({rate}); registry CPU while "
                           f"measured (share of a core): {share}; {busy()}; not ours: "
                           f"{max(0.0, others):,.0f} of {wall * (os.cpu_count() or 1):,.0f} "
                           f"core-seconds ({max(0.0, others) / wall:.2f} cores) over "
                           f"{wall:,.0f} s" + (f"; measured processes in a cgroup of "
                                                f"{group.describe()}" if group else ""))
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
            procs.clear()
            print_table({size: table[size]}, {size: notes[size]})
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        if group is not None:
            group.remove()
        await engine.dispose()
        if table:
            print_table(table, notes)
            if args.dump:
                dump(Path(args.dump), table)
        if not args.keep:
            await drop_database(handle.url)
            log(f"dropped {DB}")
        await untune(handle.url, [kv.split("=", 1)[0] for kv in args.pg_set])
        handle.stop()


if __name__ == "__main__":
    main()
