"""A pattern subscription refreshes its topic list every `discovery_ms` (a provider's new
results topic is consumed within seconds); every other subscription's consumer keeps
aiokafka's 5-minute metadata age (each refresh is a request to the broker). The consumers
are built as FastStream builds them at start, without a broker to talk to."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer

from microcred_shared.runtime import ServiceRuntime
from microcred_shared.settings import ServiceSettings


async def nothing(conn: Any, items: list[Any]) -> dict[int, str]:
    return {}


def consumer_of(subscriber: Any) -> Any:
    # What FastStream 0.7.8's subscriber.start() does.
    return subscriber.builder(group_id=subscriber.group_id, client_id="test",
                              **subscriber._connection_args)


async def test_only_the_pattern_subscription_refreshes_its_metadata_often() -> None:
    rt = ServiceRuntime(ServiceSettings(), [])
    rt.engine = object()  # type: ignore[assignment]  # not used until a batch arrives
    rt.subscribe("plain", nothing, None)
    rt.subscribe("by-pattern", nothing, None, pattern=r"^microcred\.p\..*$", discovery_ms=5000)
    for sub in rt._subs:
        rt._register(*sub)
    # What broker.start() binds once connected: the broker's consumer options (here the
    # service-wide default a broker option metadata_max_age_ms used to change for all).
    rt.broker.config.broker_config.builder = partial(
        AIOKafkaConsumer, bootstrap_servers="127.0.0.1:9", metadata_max_age_ms=300_000)
    ages = {topic: consumer_of(s)._client._metadata_max_age_ms
            for topic, s in rt.subscribers.items()}
    assert ages == {"plain": 300_000, "by-pattern": 5000}
