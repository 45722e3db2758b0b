"""Prometheus metrics of one service at `GET /metrics` (ADR 17).

Read at scrape time from what the service already counts, so the hot path pays nothing:
records applied and dead-lettered per subscription, events published by the relay, the
outbox backlog and the age of its oldest row (one indexed query per scrape), consumer lag
per partition (the broker's high watermark minus the group's committed offset), and HTTP
requests by route template and status. No label carries a learner, a provider key or any
other personal or secret value: routes are templates (`/v1/credentials/{credential_id}`).

A service adds counters of its own (notify: mails and webhooks) by appending a
`MetricSource` to its runtime's `metric_sources`: a function called at each scrape that
returns metric families built from what the service already counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from microcred_shared.runtime import ServiceRuntime

# Called at each scrape; it reads counters the service keeps and must not do I/O.
MetricSource = Callable[[], Iterable[Metric]]

_BACKLOG = sa.text("SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at)) FROM outbox")


class _RuntimeCollector(Collector):
    """Turns the runtime's own counters into metric families when scraped."""

    def __init__(self, rt: ServiceRuntime) -> None:
        self.rt = rt
        self.backlog: tuple[int, float] = (0, 0.0)
        self.lag: list[tuple[str, str, int, int]] = []  # subscription, topic, partition, lag

    def collect(self) -> Iterable[Metric]:
        applied = CounterMetricFamily("microcred_consumer_applied", "Records applied",
                                      labels=["subscription"])
        dead = CounterMetricFamily("microcred_consumer_dead_lettered",
                                   "Records dead-lettered with a reason", labels=["subscription"])
        for name, consumer in sorted(self.rt.consumers.items()):
            applied.add_metric([name], consumer.applied)
            dead.add_metric([name], consumer.dead_lettered)
        published = CounterMetricFamily("microcred_outbox_published",
                                        "Events the outbox relay published")
        published.add_metric([], self.rt.relay.published if self.rt.relay else 0)
        rows = GaugeMetricFamily("microcred_outbox_backlog", "Outbox rows not yet published")
        rows.add_metric([], self.backlog[0])
        age = GaugeMetricFamily("microcred_outbox_oldest_seconds",
                                "Age of the oldest unpublished outbox row")
        age.add_metric([], self.backlog[1])
        lag = GaugeMetricFamily("microcred_consumer_lag", "Records not yet committed",
                                labels=["subscription", "topic", "partition"])
        for sub, topic, partition, n in self.lag:
            lag.add_metric([sub, topic, str(partition)], n)
        yield from (applied, dead, published, rows, age, lag)
        for source in self.rt.metric_sources:
            yield from source()


async def _consumer_lag(rt: ServiceRuntime) -> list[tuple[str, str, int, int]]:
    out = []
    for name, sub in sorted(rt.subscribers.items()):
        consumer = getattr(sub, "consumer", None)  # aiokafka's, while the subscriber runs
        if consumer is None:
            continue
        for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
            high = consumer.highwater(tp)
            if high is None:
                continue  # nothing fetched from it yet
            committed = await consumer.committed(tp) or 0
            out.append((name, tp.topic, tp.partition, max(high - committed, 0)))
    return out


class _Timing:
    """Plain ASGI (no BaseHTTPMiddleware task per request): time and count each request by
    the route template the router matched. The histogram's child of each (method, route,
    status) is looked up once: `labels()` checks and joins the values under a lock on
    every call (issue 12: a few per cent of a one-result ingest request)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app, self.histogram = app, histogram
        self._children: dict[tuple[str, str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), "500"

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            if template not in ("/metrics", "/healthz"):
                # Route templates, methods and statuses are few; a method the client made
                # up makes one more child, as it did through labels().
                key = (scope["method"], template, status)
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self.histogram.labels(*key)
                child.observe(time.perf_counter() - start)


def install(api: FastAPI, rt: ServiceRuntime) -> Callable[[ASGIApp], ASGIApp]:
    """The service's metrics: `/metrics` and the timing of every request. Returns what
    times an app of its own into the same histogram (the front door's, `lean.FrontDoor`)."""
    registry = CollectorRegistry(auto_describe=True)
    collector = _RuntimeCollector(rt)
    registry.register(collector)
    requests = Histogram("microcred_http_request_seconds", "HTTP requests by route and status",
                         ["method", "route", "status"], registry=registry,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    api.add_middleware(_Timing, histogram=requests)

    @api.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if rt.engine is not None:
            async with rt.engine.connect() as conn:
                count, oldest = (await conn.execute(_BACKLOG)).one()
            collector.backlog = (int(count), float(oldest or 0.0))
        collector.lag = await _consumer_lag(rt)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def timed(app: ASGIApp) -> ASGIApp:
        return _Timing(app, requests)

    return timed


__all__ = ["MetricSource", "install"]
