"""Client CPU per credential of the registry's registration path in process: batches of
`credentials.issued` records (issuance's own credential documents, ~3.4 KB each) applied by
the consumer the service runs (inbox, `credentials.on_issued` with the issue mail's wallet
links, outbox, commit) on a real PostgreSQL, Kafka left out.

    uv run --frozen python bench/registry/registration.py [--batch 8] [--batches 200] [--rounds 5]
    (cd /tmp/old && uv run --frozen python /path/to/this/bench/registry/registration.py)

Run from another checkout's folder it measures that checkout's code (its installed
packages): two trees side by side. Starts the devstack's embedded PostgreSQL in a temporary
folder and stops it at the end. CPU per credential: this process's (`time.process_time`),
what the service pays, and (since wave 17) the PostgreSQL server's, all its processes by
psutil (the backends, WAL writer, checkpointer; an autovacuum worker that ended within the
round is not counted), what the database pays.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psutil
from aiokafka.structs import ConsumerRecord

from microcred_devstack.postgres import ensure_databases_async, start_postgres
from microcred_registry.credentials import handlers as credentials
from microcred_registry.delivery.handlers import mail_exchanges
from microcred_registry.migrations import MIGRATIONS
from microcred_shared.consumer import BatchConsumer
from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import encode, new_envelope
from microcred_shared.contract.events import CredentialIssued
from microcred_shared.db import make_engine, migrate
from microcred_shared.settings import database_url_for
from microcred_testkit.vc_examples import ExampleIssuer

BASE = "https://registry.microcred.example"
_offsets = itertools.count()


def _server_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of the server and each of its processes, by pid."""
    out = {}
    main = psutil.Process(pid)
    for proc in [main, *main.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[proc.pid] = t.user + t.system
    return out


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _records(doc: dict, n: int) -> list[ConsumerRecord]:
    out = []
    for _ in range(n):
        cid = uuid.uuid4()
        event = CredentialIssued(
            credential_id=cid, assessment_id=uuid.uuid4(), provider_id="lakeshore-college",
            definition_id="lakeshore-data-analytics-fundamentals", definition_version=1,
            learner_key=str(uuid.uuid4()), learner_email="ada@learners.example",
            learner_name="Ada Lovelace", learner_language="fr", title="Data Analytics",
            issued_at=datetime.now(UTC), credential={**doc, "id": f"urn:uuid:{cid}"})
        value = encode(event)
        out.append(ConsumerRecord(
            topic=topics.CREDENTIALS_ISSUED, partition=0, offset=next(_offsets), timestamp=0,
            timestamp_type=0, key=event.key(), value=value, checksum=None,
            serialized_key_size=-1, serialized_value_size=len(value),
            headers=new_envelope(event, "/microcred/issuance").headers()))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = start_postgres(Path(tempfile.mkdtemp(prefix="microcred-registration-")))
    try:
        name = f"bench_registration_{uuid.uuid4().hex[:8]}"
        await ensure_databases_async(server.url, [name])
        engine = make_engine(database_url_for(server.url, name), pool_size=2)
        await migrate(engine, MIGRATIONS)
        links = partial(mail_exchanges, base_url=BASE, ttl=timedelta(days=7))
        consumer = BatchConsumer(service="registry", engine=engine, expected=CredentialIssued,
                                 handler=partial(credentials.on_issued, base_url=BASE,
                                                 wallet_links=links), hold=1.0)
        doc = ExampleIssuer().credential(0)
        await consumer.apply(_records(doc, args.batch))  # warm: statements prepared
        pid = server.pid
        assert pid is not None
        client: list[float] = []
        db: list[float] = []
        for _ in range(args.rounds):
            batches = [_records(doc, args.batch) for _ in range(args.batches)]
            n = args.batches * args.batch
            before = _server_cpu(pid)
            start = time.process_time()
            for batch in batches:
                await consumer.apply(batch)
            client.append((time.process_time() - start) / n * 1e6)
            db.append(_spent(before, _server_cpu(pid)) / n * 1e6)
        await engine.dispose()
        print(f"batches of {args.batch}, {args.batches} per round, {args.rounds} rounds: "
              f"client CPU per credential best {min(client):.1f} µs (median "
              f"{sorted(client)[len(client) // 2]:.1f}); server CPU per credential best "
              f"{min(db):.1f} µs (median {sorted(db)[len(db) // 2]:.1f}); rounds (client, "
              f"server): {', '.join(f'{c:.0f}/{d:.0f}' for c, d in zip(client, db, strict=True))}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
