"""The backbone's event contract: what travels on Kafka, where, and how it may change.

This is what a partner institution or a new consumer builds against; nothing in it does I/O
(ADR 20).

- `events` (and `events_providers`, `events_learners`, `events_employers`): the payloads,
  versioned pydantic models; `EVENT_TYPES` maps each `ce_type` to its model;
- `cloudevents`: the CloudEvents 1.0 binary-mode envelope in Kafka headers (`Envelope`,
  `encode`, `parse_envelope`, `decode`);
- `topics`: every topic, its dead-letter sibling, and who produces and consumes it
  (`SERVICE_TOPICS`, from which each service's Kafka ACLs are derived, ADR 19);
- `schemas` and `schema_compat`: the JSON Schema snapshot of every event type
  (docs/events/schemas/) and the check that a change stays compatible for its consumers;
- `asyncapi`: the AsyncAPI 3.0 document of all of it (docs/asyncapi.yaml, served by
  assessment at `/asyncapi.yaml`);
- `tools`: `python -m microcred_shared.contract.tools schemas|asyncapi [--write]`.
"""

from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import (
    Envelope,
    EnvelopeError,
    decode,
    encode,
    new_envelope,
    parse_envelope,
)
from microcred_shared.contract.events import EVENT_TYPES, Event

__all__ = ["EVENT_TYPES", "Envelope", "EnvelopeError", "Event", "decode", "encode",
           "new_envelope", "parse_envelope", "topics"]
