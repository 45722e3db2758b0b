"""Provider credentials, the pure part: the Kafka principal a provider gets (its user name,
its own results topic) and what the operator hands over. No broker, database or HTTP here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microcred_shared.contract import topics


@dataclass(frozen=True)
class Principal:
    username: str
    password: str
    topic: str


def username_for(provider_id: str) -> str:
    return f"provider-{provider_id}"


def describe(principal: Principal, bootstrap: str | None) -> dict[str, Any]:
    """What the operator hands to the provider, once: the password is not kept."""
    return {"username": principal.username, "password": principal.password,
            "mechanism": "SCRAM-SHA-512", "topic": principal.topic,
            "dead_letter_topic": topics.dlq(principal.topic),
            "consumer_group_prefix": principal.username, "bootstrap": bootstrap}
