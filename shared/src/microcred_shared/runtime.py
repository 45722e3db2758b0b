"""Composition root helpers: one process per service runs its HTTP API, its Kafka
subscribers and its outbox relay, and shuts them down in order."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from itertools import chain
from typing import Any, Self

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from microcred_shared import logs, metrics, problems
from microcred_shared.consumer import (
    HOLD,
    BatchConsumer,
    BatchHandler,
    ConflictHook,
    DatabaseUnavailable,
    lenient_batch_parser,
    records_of,
)
from microcred_shared.contract.events import Event
from microcred_shared.db import Migration, ensure_database, make_engine, migrate, unavailable
from microcred_shared.lean import FrontDoor
from microcred_shared.logs import outages
from microcred_shared.offsets import CoalescedCommits
from microcred_shared.outbox import OutboxRelay, make_producer, recording
from microcred_shared.settings import ServiceSettings
from microcred_shared.stalls import LoopWatch
from microcred_shared.storable import RefuseUnstorable
from microcred_shared.telemetry import PassTraceparent, setup_tracing

log = logging.getLogger(__name__)
# Stored loosely; on_start/on_stop check each hook against the runtime's own (sub)class.
Hook = Callable[[Any], Awaitable[None]]


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, migrations: Sequence[Migration],
                 **broker_options: Any) -> None:
        self.settings = settings
        self.migrations = migrations
        self.tracer_provider = setup_tracing(f"microcred-{settings.service}",
                                             settings.otlp_endpoint)
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=f"microcred-{settings.service}",
            security=settings.kafka_security(),  # its own principal under SASL (ADR 19)
            # Only where spans go somewhere: with nothing recording, the consumer hands each
            # record's traceparent on itself, and the middleware's per-batch span and
            # per-record baggage lookups were work for nothing (issue 12).
            middlewares=[KafkaTelemetryMiddleware(tracer_provider=self.tracer_provider)]
            if recording() else [],
            graceful_timeout=15.0,
            # No dependency injection into the batch handler (the only subscriber, below):
            # FastDepends resolved its `KafkaMessage` parameter, a context field, by running
            # a synchronous lookup in a worker thread - a thread hop, a task group and a
            # wake-up of the event loop for every batch (issue 12). The decoder hands the
            # handler the message itself.
            apply_types=False,
            # FastStream logged "Received" and "Processed" at INFO for every batch of every
            # subscription, through a handler of its own (colours, never the JSON format):
            # two lines formatted and written per batch, most of a service's log (issue 12).
            # Our logger, so its records take the service's format; those two at DEBUG.
            logger=logging.getLogger("microcred.broker"), log_level=logging.DEBUG,
            **broker_options,
        )
        self.engine: AsyncEngine | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: dict[str, BatchConsumer] = {}
        self.subscribers: dict[str, Any] = {}  # FastStream's, by subscription (metrics: lag)
        self.commits: dict[str, CoalescedCommits] = {}  # each subscription's offsets (ADR 2)
        self._subs: list[tuple[str, BatchHandler, type[Event] | None, int | None,
                               str | None, int | None, ConflictHook | None]] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.commit_listeners: list[Callable[[], None]] = []  # after every batch's commit
        self._topic_listeners: dict[str, list[Callable[[], None]]] = {}
        self.restarted_consumers = 0  # by watch_consumers
        # The service's own counters at GET /metrics, next to the shared ones.
        self.metric_sources: list[metrics.MetricSource] = []
        # How late the loop runs and what the garbage collector takes (GET /metrics; a log
        # line per stall of MICROCRED_LOOP_STALL_LOG_MS or more).
        self.loop_watch = LoopWatch(report=settings.loop_stall_log_ms / 1000)
        self.metric_sources.append(self.loop_watch.metrics)

    def subscribe(self, topic: str, handler: BatchHandler, expected: type[Event] | None,
                  *, max_records: int | None = None, pattern: str | None = None,
                  discovery_ms: int | None = None,
                  on_conflict: ConflictHook | None = None) -> None:
        """With `pattern`, `topic` only names the subscription (its consumer group) and
        every topic matching the regular expression is consumed, new ones included once
        the consumer's metadata refreshes: every `discovery_ms` (this subscription's
        consumer only; aiokafka's default is 5 minutes). Each refresh is a metadata
        request, so the other subscriptions keep the default.
        `on_conflict` sees the records that reuse a ce_id for another payload before they
        are dead-lettered (in the batch's transaction)."""
        assert discovery_ms is None or pattern, "discovery_ms is for a pattern subscription"
        self._subs.append((topic, handler, expected, max_records, pattern, discovery_ms,
                           on_conflict))

    # Typed by Self: a service's subclass of ServiceRuntime (declaring the attributes its
    # start hook sets) gets hooks and routes that take that subclass.
    def on_start(self, hook: Callable[[Self], Awaitable[None]]) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Callable[[Self], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    def background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    def after_commit(self, topic: str, listener: Callable[[], None]) -> None:
        """Call `listener` after each commit of a batch of subscription `topic` only (a
        projection's reload after its own topic's writes, not after every batch)."""
        self._topic_listeners.setdefault(topic, []).append(listener)

    def _committed(self, topic: str, wrote: bool) -> None:
        # Only a batch that wrote outbox rows wakes the relay (each wake is a claim
        # transaction); what it wrote is then published at once, as before.
        if wrote and self.relay:
            self.relay.wake()
        for listener in self.commit_listeners:
            listener()
        for listener in self._topic_listeners.get(topic, ()):
            listener()

    def _register(self, topic: str, handler: BatchHandler, expected: type[Event] | None,
                  max_records: int | None, pattern: str | None = None,
                  discovery_ms: int | None = None,
                  on_conflict: ConflictHook | None = None) -> None:
        assert self.engine is not None
        consumer = BatchConsumer(service=self.settings.service, engine=self.engine,
                                 handler=handler, expected=expected,
                                 on_committed=partial(self._committed, topic),
                                 on_conflict=on_conflict, hold=HOLD)
        self.consumers[topic] = consumer

        where: dict[str, Any] = {"pattern": pattern} if pattern else {}
        commits = CoalescedCommits(topic, self.settings.commit_interval_ms / 1000)
        self.commits[topic] = commits

        # Topics are a contract, made on purpose by the deployment (8 partitions, compacted
        # where it says so): a service never creates one, and says nothing about trying to
        # (FastStream's default tried, and warned once per subscription at every start).
        subscriber = self.broker.subscriber(
            *(() if pattern else (Topic(topic, declare=False),)), **where,
            group_id=f"{self.settings.consumer_group}.{topic}", batch=True,
            max_records=max_records or self.settings.batch_size, batch_timeout_ms=20,
            auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL,
            max_poll_interval_ms=600_000, fetch_max_wait_ms=FETCH_WAIT_MS,
            decoder=_the_message_itself,
            parser=lenient_batch_parser, listener=commits,
        )
        self.subscribers[topic] = subscriber
        wait_for_records(subscriber)
        commit_on_stop(subscriber, commits)
        consumer_option(subscriber, "consumer_timeout_ms", FETCHER_TICK_MS)
        if discovery_ms is not None:
            consumer_option(subscriber, "metadata_max_age_ms", discovery_ms)

        async def durable(records: tuple[ConsumerRecord, ...]) -> bool:
            """Apply a batch; whether it is durable (else it is to be read again)."""
            try:
                await consumer.apply(records)
            except DatabaseUnavailable as exc:
                outages.down("database", exc)  # said once per outage, not per batch
                return False
            except Exception:
                log.exception("batch on %s not applied; rewinding for redelivery", topic)
                return False
            # Durable: these records' offsets go with the subscription's next commit, sent
            # apart from the loop (not FastStream's ack, which would commit the position).
            commits.done(records)
            return True

        @subscriber
        async def on_batch(msg: KafkaMessage) -> None:
            if not await durable(records_of(msg.raw_message)):
                await msg.nack()
                await asyncio.sleep(2.0)

        if not recording():  # no telemetry middleware to run: straight to the consumer
            consume_directly(subscriber, durable)

    def app(self, title: str, routes: Callable[[FastAPI, Self], None] | None = None,
            *, routers: Sequence[APIRouter] = ()) -> FastAPI:
        """The service's FastAPI app. Module-level `routers` reach this runtime through
        `request.app.state.runtime` (see `runtime_of`); `routes` is the older per-app hook."""
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        api = FastAPI(title=title, lifespan=lifespan, **_NO_NATIVE_TELEMETRY)
        api.state.runtime = self
        problems.install(api)
        api.add_middleware(RefuseUnstorable)  # inside metrics: refusals are counted
        # The service's routes are matched first, in the routers' order (their paths and
        # these do not overlap): FastAPI tries each route in turn, and these three are
        # asked for by probes and scrapers, not by the requests that come by thousands.
        if routes:
            routes(api, self)
        for router in routers:
            api.include_router(router)

        @api.get("/healthz", include_in_schema=False)
        async def healthz() -> dict[str, Any]:
            return {"status": "ok", "service": self.settings.service,
                    "applied": {t: c.applied for t, c in self.consumers.items()},
                    "dead_lettered": {t: c.dead_lettered for t, c in self.consumers.items()},
                    "published": self.relay.published if self.relay else 0,
                    "relay_active": bool(self.relay and self.relay.active),
                    # the outbox shards this instance publishes (ADR 2)
                    "relay_shards": sorted(self.relay.shards) if self.relay else []}

        @api.get("/readyz", include_in_schema=False)
        async def readyz() -> JSONResponse:
            """Ready to take requests: the database answers within a second. The broker is
            reported, not required: what is accepted waits in the outbox until it is back."""
            database = await self._database_answers()
            kafka = bool(self.relay and self.relay.failures == 0)
            return JSONResponse(status_code=200 if database else 503, content={
                "ready": database, "database": "ok" if database else "unavailable",
                "kafka": "ok" if kafka else "unavailable"})

        timed = metrics.install(api, self)
        problems.document(api)  # every problem any operation can answer, in its OpenAPI
        if not recording():  # no spans go anywhere: only hand an incoming trace on
            api.add_middleware(PassTraceparent)
            # Outermost: a LeanRoute's plain request is served with the trace context and
            # its timing, without the layers between (issue 12, item 2, wave 16).
            api.add_middleware(FrontDoor, api=api, routers=list(routers),
                               layers=lambda app: PassTraceparent(timed(app)))
            return api
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(api, tracer_provider=self.tracer_provider,
                                           excluded_urls="healthz")
        return api

    async def _database_answers(self) -> bool:
        if self.engine is None:
            return False
        try:
            async with asyncio.timeout(1.0), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            if not (unavailable(exc) or isinstance(exc, TimeoutError)):
                raise
            outages.down("database", exc)
            return False
        outages.up("database")
        return True

    async def start(self) -> None:
        s = self.settings
        self.loop_watch.start()
        if s.server_database_url and not s.own_database_url:
            await ensure_database(s.server_database_url, s.database_name)
        self.engine = make_engine(s.database_url)
        await migrate(self.engine, self.migrations)
        # Named per service: the service's instances share its outbox by shard (ADR 2).
        self.relay = OutboxRelay(self.engine, await self._new_producer(), name=s.service,
                                 renew=self._new_producer)
        self._relay_task = asyncio.create_task(self.relay.run())
        for hook in self._on_start:
            await hook(self)
        for sub in self._subs:
            self._register(*sub)
        await self.broker.start()
        self.background(self.watch_consumers())
        log.info("%s started", s.service)

    async def watch_consumers(self, every: float = 5.0) -> None:
        """Restart a subscription whose consumer lost its group coordinator for good.

        aiokafka's coordination task can die on an assertion when a pattern subscription
        sees a new topic during a rebalance (aio-libs/aiokafka#796, open); FastStream then
        logs "Kafka error occurred" every 5 s and the subscription consumes nothing, ever,
        while the service looks healthy. Its committed offsets are where the work stopped,
        so a restarted consumer goes on from there: nothing is lost."""
        while True:
            await asyncio.sleep(every)
            for topic, subscriber in list(self.subscribers.items()):
                error = coordinator_failure(subscriber)
                if error is None:
                    continue
                log.error("the consumer of %s stopped coordinating (%s); restarting it",
                          topic, error)
                try:
                    await subscriber.stop()
                    await subscriber.start()
                    self.restarted_consumers += 1
                except Exception:
                    log.exception("the consumer of %s could not be restarted", topic)

    async def _new_producer(self) -> AIOKafkaProducer:
        s = self.settings
        producer = make_producer(s.kafka_bootstrap_servers, f"microcred-{s.service}-relay",
                                 compression=s.kafka_compression, **s.kafka_client_options())
        await producer.start()
        return producer

    async def stop(self) -> None:
        # Order matters: stop taking new records, let in-flight batches commit, publish
        # what they wrote, then close the connections.
        await self.broker.stop()
        for hook in self._on_stop:
            await hook(self)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self.consumers.values():
            await consumer.close()  # the connections kept between batches
        if self.relay:
            self.relay.stop()
            await self._relay_task
            await self.relay.producer.stop()
        if self.engine:
            await self.engine.dispose()
        await self.loop_watch.stop()
        shutdown = getattr(self.tracer_provider, "shutdown", None)
        if shutdown:
            shutdown()  # flushes the spans still buffered


def consumer_option(subscriber: Any, name: str, value: Any) -> None:
    """Set an aiokafka consumer option that FastStream's `subscriber()` does not take (it
    has them per broker only) for this subscriber's consumer alone. FastStream 0.7.8 builds
    the consumer as `builder(group_id=..., client_id=..., **_connection_args)`, the broker's
    options bound in `builder`: an entry here overrides the broker's."""
    args = getattr(subscriber, "_connection_args", None)
    if not isinstance(args, dict):
        raise RuntimeError("FastStream's subscriber no longer keeps _connection_args: "
                           f"{name} cannot be set per subscription")
    args[name] = value


def consume_directly(subscriber: Any,
                     durable: Callable[[tuple[ConsumerRecord, ...]], Awaitable[bool]]) -> None:
    """Hand each batch the subscription's loop fetched straight to `durable`, past
    FastStream's per-message machinery (FastStream 0.7.8: an exit stack, context scopes,
    its logging middleware, the parser, the decoder, the handler's call wrappers and a
    response object per batch - about 300 Python calls, which a batch of two records pays
    in full: issue 12). Kept: the `running` check and the subscriber's lock, which
    `subscriber.stop()` waits on, so a stopping service still lets the batch in flight
    commit. The records reach the consumer exactly as they came (no parser to trip on a
    header: the consumer dead-letters what it cannot read). A batch that is not durable
    is read again: each of its partitions rewound to its earliest record, as FastStream's
    `nack` does, then a pause. Where spans are recorded, FastStream's path stays: its
    telemetry middleware makes the batch's span."""
    async def consume_one(records: tuple[ConsumerRecord, ...]) -> None:
        if not subscriber.running:
            return
        with subscriber.lock:
            try:
                if await durable(records):
                    return
                rewind(subscriber.consumer, records)
            except Exception:  # the subscription's loop must go on whatever happens here
                log.exception("a batch on %s could not be rewound", records[0].topic)
            await asyncio.sleep(2.0)

    subscriber.consume_one = consume_one


def rewind(consumer: Any, records: Sequence[ConsumerRecord]) -> None:
    """Seek each partition of `records` back to its earliest one: read again next."""
    earliest: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        if record.offset < earliest.get(tp, record.offset + 1):
            earliest[tp] = record.offset
    for tp, offset in earliest.items():
        consumer.seek(tp, offset)


def commit_on_stop(subscriber: Any, commits: CoalescedCommits) -> None:
    """Hand each consumer the subscription builds to `commits`, and flush the pending
    offsets when it stops. FastStream's `stop()` waits for the batch in flight and then
    stops the consumer: the flush comes between the two, while the consumer is still a
    member of its group."""
    start = subscriber.start

    async def starting() -> None:
        await start()
        consumer = subscriber.consumer
        commits.attach(consumer)
        stop = consumer.stop

        async def stopping() -> None:
            try:
                await commits.close()
            finally:
                await stop()

        consumer.stop = stopping

    subscriber.start = starting


def coordinator_failure(subscriber: Any) -> BaseException | None:
    """The error that ended the group coordination of a running subscriber's consumer."""
    consumer = getattr(subscriber, "consumer", None)
    task = getattr(getattr(consumer, "_coordinator", None), "_coordination_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


# How long the broker holds a fetch that finds nothing new (records end it at once). Idle
# fetches are most of the broker's idle CPU: 21 idle consumers (the four services' count)
# cost it 11.6-12.5 % of a core at aiokafka's default 500 ms, 4.1-5.5 % at 2 s (measured
# side by side, issue 12). The price: aiokafka keeps one fetch per broker in flight, so a
# partition whose records were still being handled when the next fetch left is fetched
# again when that one returns - at once under load (another partition's records end it),
# at most this long when the topic is quiet but for that partition.
FETCH_WAIT_MS = 2000
# How often aiokafka's background fetch routine goes round when nothing wakes it (its
# `consumer_timeout_ms`; aiokafka's default is 200 ms). Everything the routine acts on
# wakes it at once: a fetch that returns (at the latest FETCH_WAIT_MS after it left),
# records consumed, a seek or rewind, a pause lifted, a lost assignment; a partition whose
# records wait to be consumed sets its own, shorter timeout. So the timer only made each
# idle subscription walk its partitions and re-arm its waits 5 times a second: the largest
# part of an idle service's CPU (21 subscriptions in the four services; bench/e2e/README.md,
# issue 12, wave 14).
FETCHER_TICK_MS = FETCH_WAIT_MS
# How long an idle subscription waits for records before its loop goes round again.
# Records that arrive end the wait at once, so this is no latency: only how often a
# subscription with nothing to do wakes up.
IDLE_WAIT_MS = 1000


def wait_for_records(subscriber: Any, wait_ms: int = IDLE_WAIT_MS) -> None:
    """Let a FastStream batch subscriber wait for records instead of spinning.

    FastStream's batch loop calls `getmany(timeout_ms=batch_timeout_ms)` and, when that
    comes back empty, sleeps `batch_timeout_ms` more (FastStream 0.7.8). With the 20 ms the
    services used, each of a service's subscriptions woke 25 times a second with nothing to
    do (about a third of a service's idle CPU: issue 12), and the sleep added up to 20 ms
    to the first record after a quiet spell. Here `getmany` waits up to `wait_ms` and
    returns as soon as a fetch brings records (aiokafka wakes the waiter), with no sleep;
    a stopping consumer wakes it too."""
    async def get_msg(consumer: Any) -> tuple[ConsumerRecord, ...]:
        messages = await consumer.getmany(timeout_ms=wait_ms,
                                          max_records=subscriber.max_records)
        return tuple(chain.from_iterable(messages.values()))

    subscriber.get_msg = get_msg


def runtime_of(request: Request) -> ServiceRuntime:
    """The runtime serving this request (a service's deps module narrows the type)."""
    rt: ServiceRuntime = request.app.state.runtime
    return rt


async def _the_message_itself(msg: Any) -> Any:
    # What the handler is called with (no dependency injection: see the broker). The
    # consumer decodes each record itself: FastStream's JSON decoding of a batch would raise
    # on one malformed record before our handler could dead-letter it.
    return msg


def serve(app: FastAPI, settings: ServiceSettings, *, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    import uvicorn
    from uvicorn.main import STARTUP_FAILURE

    from microcred_shared.http_server import OneWriteHttpTools, QuietServer

    logs.configure(settings.service, settings.log_format)
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise SystemExit(f"{settings.service}: TLS needs both a certificate and its key file")
    settle_heap()
    # What uvicorn.run does for one process without reload, with a main loop that is woken
    # by the exit signal instead of waking ten times a second (http_server).
    server = QuietServer(uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning",
        timeout_graceful_shutdown=20, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
        **(SERVER_OPTIONS | {"http": OneWriteHttpTools})))
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


# The cyclic garbage collector's generation thresholds for a running service (CPython's
# defaults are 700, 10, 10). Every record and request allocates thousands of short-lived
# containers (events, JSON, SQL parameters), so at 700 the young generation was collected
# several times per batch, and every tenth-of-a-tenth collection walked every object the
# process holds (~160,000: modules, FastAPI's routes, pydantic's validators) - about a
# tenth of each service's CPU under load (bench/e2e/README.md, issue 12).
GC_THRESHOLDS = (20_000, 20, 10)


def settle_heap() -> None:
    """Once the service's code and app are built: collect what start-up left behind, move
    everything that lives on into the permanent generation (`gc.freeze`: never scanned
    again), and collect young objects less often. Cycles are still collected - later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# FastAPI's own OpenTelemetry records nothing here: with no OTLP endpoint no provider is
# configured, and with one the spans come from OpenTelemetry's instrumentation, which turns
# FastAPI's off. Asking it anyway cost every request three provider look-ups, each reading
# the environment (issue 12). Only FastAPI 0.16x has it.
_NO_NATIVE_TELEMETRY: dict[str, Any] = {
    "telemetry": {"tracing": False, "metrics": False, "logs": False}} \
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {}

# httptools (C) instead of h11 (pure Python) and uvloop instead of asyncio's own loop: a
# keep-alive request costs about three quarters of the CPU (issue 12, item 2). The access
# log is off: below the services' log level anyway. `serve` runs httptools through
# `http_server.OneWriteHttpTools`: an answer's headers and body leave in one write.
SERVER_OPTIONS: dict[str, Any] = {
    "http": "httptools", "access_log": False,
    "loop": "asyncio" if sys.platform == "win32" else "uvloop"}
