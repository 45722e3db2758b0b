"""notify's mail hop alone: rows owed at a steady rate → mails accepted by an SMTP server.

    uv run --frozen python bench/e2e/mail_hop.py --rate 500 --seconds 20

The end-to-end benchmark's latency phase measures this hop among five, on a machine whose
two cores the other services, Kafka and the neighbours share: a difference of tens of
milliseconds in one hop drowns there. This starts its own PostgreSQL (embedded, or
DATABASE_URL) and the benchmark's lean SMTP sink, runs notify's `Deliverer` with the real
SMTP pool, and commits `credential.registered` rows as notify's consumer does: a batch every
`--batch-ms` (the statement the handler runs, then the rows handed to the worker as after a
consumer commit; `--claim`: inserted due and the worker woken to claim them), open loop.
Prints created_at → delivered_at and created_at → accepted by the
sink (p50/p95/p99) and the CPU per mail of this process and of PostgreSQL. Run it from two
trees in the same second to compare two versions of the delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))

import run  # noqa: E402  (the e2e benchmark's sink)
from run import LeanSmtp  # noqa: E402

from microcred_devstack import free_port  # noqa: E402
from microcred_devstack.postgres import ensure_databases_async, start_postgres  # noqa: E402
from microcred_notify.learner_mail import delivery, handlers  # noqa: E402
from microcred_notify.learner_mail.delivery import Deliverer  # noqa: E402
from microcred_notify.learner_mail.smtp import SmtpPool  # noqa: E402
from microcred_notify.models import MIGRATIONS  # noqa: E402
from microcred_shared.db import driver_transaction, make_engine, migrate  # noqa: E402
from microcred_shared.settings import database_url_for  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))] if s else float("nan")


class _Late:
    """A transport whose writes go out `delay` seconds later, in order: a relay that
    takes that long to answer (network round trip and its own queue-file write)."""

    def __init__(self, transport: Any, delay: float) -> None:
        self._t, self._delay = transport, delay
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self._loop.call_later(self._delay, self._t.write, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


def slow_sink(delay: float) -> None:
    """The lean sink's sessions answer each command group `delay` seconds late."""
    if not delay:
        return

    class Session(run._SinkSession):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Late(transport, delay))

    run._SinkSession = Session  # type: ignore[misc]


def postgres_cpu(pid: int | None) -> float:
    """CPU seconds of this run's PostgreSQL server and its backends so far."""
    if pid is None:
        return 0.0
    server = psutil.Process(pid)
    total = 0.0
    for p in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


async def main(args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="mail-hop-"))
    pg = start_postgres(state)
    slow_sink(args.relay_ms / 1000)
    if args.gather_ms is not None:
        delivery.GATHER = args.gather_ms / 1000  # type: ignore[misc]
    sink = LeanSmtp(free_port()).start()
    try:
        await ensure_databases_async(pg.url, ["mailhop"])
        engine = make_engine(database_url_for(pg.url, "mailhop"), pool_size=4)
        await migrate(engine, MIGRATIONS)
        wake = asyncio.Event()
        pool = SmtpPool("127.0.0.1", sink.port, args.connections)
        d = Deliverer(engine, pool, sender="credentials@microcred.local", max_attempts=6,
                      retry_base=5.0, wake=wake, on_published=lambda: None,
                      connections=args.connections)
        groups: list[int] = []
        record = Deliverer._record

        async def counted(self: Deliverer, conn: Any, outcomes: list[Any],
                          driver: Any = None) -> bool:
            groups.append(len(outcomes))
            return await record(self, conn, outcomes, driver)

        Deliverer._record = counted  # type: ignore[method-assign]
        worker = asyncio.ensure_future(d.run())
        per_batch = args.rate * args.batch_ms / 1000
        total = int(args.rate * args.seconds)
        loop = asyncio.get_running_loop()
        me = psutil.Process()

        async def owe(n: int, tag: str) -> None:
            """A consumer batch's insert, as notify's credentials.registered handler runs
            it: rows leased to this loop, handed to it once committed (`--claim`: due rows,
            the loop woken to claim them, as status and sign-in mail still are)."""
            cids = [uuid.uuid4() for _ in range(n)]
            values = {
                "cids": cids,
                "recipients": [f"{tag}{i}-{x.hex[:8]}@example.org" for i, x in enumerate(cids)],
                "names": ["Ada"] * n, "languages": ["en"] * n,
                "titles": ["Data Analysis"] * n,
                "urls": ["https://registry.example/credentials/x"] * n,
                "details": [""] * n, "wallets": [""] * n, "wallet_qrs": [""] * n,
                "traceparents": [None] * n,
                "topics": ["microcred.credentials.registered.v1"] * n,
                "payloads": [b"{}"] * n}
            if args.claim:
                async with engine.begin() as conn:
                    await conn.execute(handlers._OWE_DUE, values)
                d.handoff.owe_claim()  # as `Owed.committed` does after the consumer's commit
                return
            lease = delivery.LEASE.total_seconds()
            deadline = loop.time() + lease / 2
            async with engine.connect() as conn, driver_transaction(conn) as driver:
                rows = await driver.fetch(handlers._OWE_LEASED,
                                          *(values[k] for k in handlers._PARAMS), lease)
            d.handoff.hand([SimpleNamespace(**r) for r in rows], deadline)

        # Warm-up: connections opened, statements prepared.
        await owe(50, "warm")
        await asyncio.sleep(2)
        cpu0, pg0 = me.cpu_times(), postgres_cpu(pg.pid)
        t0, sent, owed = loop.time(), 0, 0.0
        wall0 = time.time()
        while sent < total:
            owed += per_batch
            n = int(owed) - sent
            if n:
                await owe(n, "m")
                sent += n
            t0 += args.batch_ms / 1000
            await asyncio.sleep(max(0.0, t0 - loop.time()))
        async with asyncio.timeout(120):
            while True:
                async with engine.connect() as conn:
                    left = (await conn.exec_driver_sql(
                        "SELECT count(*) FROM notifications WHERE status <> 'delivered'")).scalar()
                if not left:
                    break
                await asyncio.sleep(0.2)
        wall = time.time() - wall0
        cpu1, pg1 = me.cpu_times(), postgres_cpu(pg.pid)
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql(
                "SELECT recipient, extract(epoch from created_at)::float8, "
                "extract(epoch from delivered_at)::float8 FROM notifications "
                "WHERE recipient LIKE 'm%'")).all()
        d.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker, 10)
        await pool.close()
        await engine.dispose()
        recorded = [(dl - cr) * 1000 for _, cr, dl in rows]
        mailed = [(sink.received[r.lower()] - cr) * 1000 for r, cr, _ in rows
                  if r.lower() in sink.received]
        proc = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) * 1000 / len(rows)
        pgc = (pg1 - pg0) * 1000 / len(rows)
        print(f"{len(rows)} mails at {args.rate}/s offered (batches every {args.batch_ms} ms), "
              f"{args.connections} connections, relay answering in {args.relay_ms:g} ms, "
              f"GATHER {delivery.GATHER * 1000:g} ms, "
              f"{wall:.1f}s")
        for name, v in (("created -> mailed (sink)", mailed),
                        ("created -> delivered_at", recorded)):
            print(f"  {name:26s} p50 {pct(v, 50):6.1f} ms  p95 {pct(v, 95):6.1f} ms  "
                  f"p99 {pct(v, 99):6.1f} ms  max {max(v):6.1f} ms")
        print(f"  recorded in {len(groups)} groups, {sum(groups) / max(len(groups), 1):.1f} "
              "mails each")
        print(f"  CPU per mail: this process (deliverer, owing, sink) {proc:.3f} ms, "
              f"postgres {pgc:.3f} ms")
    finally:
        sink.stop()
        pg.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--batch-ms", type=float, default=20)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--claim", action="store_true",
                    help="rows inserted due and claimed by the loop (before wave 15: every "
                         "mail), instead of leased and handed to it")
    ap.add_argument("--gather-ms", type=float, default=None,
                    help="the group commit's GATHER, for trying other values")
    ap.add_argument("--relay-ms", type=float, default=0,
                    help="the sink answers each command group this much later")
    asyncio.run(main(ap.parse_args()))
