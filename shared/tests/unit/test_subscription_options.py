"""A pattern subscription refreshes its topic list every `discovery_ms` (a provider's new
results topic is consumed within seconds); every other subscription's consumer keeps
aiokafka's 5-minute metadata age (each refresh is a request to the broker). The consumers
are built as FastStream builds them at start, without a broker to talk to. And every
subscription's fetch routine waits for events, not aiokafka's 200 ms timer."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer

from microcred_shared.runtime import FETCH_WAIT_MS, FETCHER_TICK_MS, ServiceRuntime
from microcred_shared.settings import ServiceSettings


async def nothing(conn: Any, items: list[Any]) -> dict[int, str]:
    return {}


def consumer_of(subscriber: Any) -> Any:
    # What FastStream 0.7.8's subscriber.start() does.
    return subscriber.builder(group_id=subscriber.group_id, client_id="test",
                              **subscriber._connection_args)


def _plain_and_pattern(**broker_options: Any) -> ServiceRuntime:
    """A runtime with a plain and a pattern subscription, registered, and the consumer
    options broker.start() binds once connected (`broker_options`)."""
    rt = ServiceRuntime(ServiceSettings(), [])
    rt.engine = object()  # type: ignore[assignment]  # not used until a batch arrives
    rt.subscribe("plain", nothing, None)
    rt.subscribe("by-pattern", nothing, None, pattern=r"^microcred\.p\..*$", discovery_ms=5000)
    for sub in rt._subs:
        rt._register(*sub)
    rt.broker.config.broker_config.builder = partial(
        AIOKafkaConsumer, bootstrap_servers="127.0.0.1:9", **broker_options)
    return rt


async def test_only_the_pattern_subscription_refreshes_its_metadata_often() -> None:
    # The service-wide default a broker option metadata_max_age_ms used to change for all.
    rt = _plain_and_pattern(metadata_max_age_ms=300_000)
    ages = {topic: consumer_of(s)._client._metadata_max_age_ms
            for topic, s in rt.subscribers.items()}
    assert ages == {"plain": 300_000, "by-pattern": 5000}


async def test_every_subscription_s_fetch_routine_waits_for_events_not_a_200_ms_timer() -> None:
    """aiokafka's fetch routine goes round on its own every `consumer_timeout_ms` (200 ms by
    default), walking every partition of an idle subscription five times a second. Each
    subscription's consumer, plain or by pattern, is built with FETCHER_TICK_MS instead,
    whatever the broker's options say; a fetch in flight ends within FETCH_WAIT_MS anyway."""
    rt = _plain_and_pattern(consumer_timeout_ms=200)
    ticks = {topic: consumer_of(s)._consumer_timeout for topic, s in rt.subscribers.items()}
    assert FETCHER_TICK_MS >= FETCH_WAIT_MS
    assert ticks == {"plain": FETCHER_TICK_MS / 1000, "by-pattern": FETCHER_TICK_MS / 1000}
