"""The AsyncAPI 3.0 document of the backbone, generated from the code.

Channels come from the topic map (`microcred_shared.contract.topics`: every topic, its `.dlq`
sibling, the per-provider results topics as one parameterised channel, compaction as a Kafka
binding), operations from `SERVICE_TOPICS` (what each service receives and sends, and the
dead letters it writes), messages from the event types (payload = the JSON Schema that
`event_schemas` snapshots; headers = the CloudEvents binary-mode Kafka headers of
`microcred_shared.contract.cloudevents`; the Kafka key). A partner institution can build a publisher
from the document alone: `info.description` says how.

`document()` builds it; `to_yaml()` / `to_json()` serialise it the one way that
docs/asyncapi.yaml is kept in (`python -m microcred_shared.contract.tools asyncapi --write`).
"""

from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml

from microcred_shared.contract import topics
from microcred_shared.contract.cloudevents import CONTENT_TYPE, SPECVERSION
from microcred_shared.contract.events import (
    NAMESPACE,
    AssessmentDecided,
    AssessmentResultSubmitted,
    CredentialIssued,
    CredentialRegistered,
    CredentialStatusChanged,
    Event,
    IssuerKeysPublished,
    NotificationDelivered,
    NotificationFailed,
    ProviderApiKeyChanged,
    StatusListPublished,
)
from microcred_shared.contract.events_employers import EmployerApiKeyChanged, EmployerPublished
from microcred_shared.contract.events_learners import (
    CredentialVisibilityChanged,
    LearnerSignInRequested,
    WalletTxCodeIssued,
)
from microcred_shared.contract.events_providers import (
    AuditRecorded,
    BrokerRefusalObserved,
    DefinitionPublished,
    ProviderPublished,
)
from microcred_shared.contract.schemas import event_types, schema_of

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
PROVIDER_RESULTS = "microcred.assessment.results.{provider}.v1"
PARTNER = "partner"  # the tag of what a partner institution does

# Which event types travel on which topic (a consumer refuses any other type there: the
# `expected` class of its subscription). tests/contract holds it to the services' code.
TOPIC_EVENTS: dict[str, tuple[type[Event], ...]] = {
    topics.RESULTS: (AssessmentResultSubmitted,),
    topics.DECISIONS: (AssessmentDecided,),
    topics.CREDENTIALS_ISSUED: (CredentialIssued,),
    topics.CREDENTIALS_REGISTERED: (CredentialRegistered,),
    topics.CREDENTIAL_STATUS: (CredentialStatusChanged,),
    topics.NOTIFICATIONS: (NotificationDelivered, NotificationFailed),
    topics.ISSUER_KEYS: (IssuerKeysPublished,),
    topics.STATUS_LISTS: (StatusListPublished,),
    topics.PROVIDER_API_KEYS: (ProviderApiKeyChanged,),
    topics.CREDENTIAL_VISIBILITY: (CredentialVisibilityChanged,),
    topics.LEARNER_SIGNIN: (LearnerSignInRequested, WalletTxCodeIssued),
    topics.EMPLOYERS: (EmployerPublished,),
    topics.EMPLOYER_API_KEYS: (EmployerApiKeyChanged,),
    topics.PROVIDERS: (ProviderPublished,),
    topics.DEFINITIONS: (DefinitionPublished,),
    topics.AUDIT: (AuditRecorded,),
    topics.KAFKA_REFUSALS: (BrokerRefusalObserved,),
}
PROVIDER_RESULTS_EVENTS: tuple[type[Event], ...] = (AssessmentResultSubmitted,)

LEARNER_KEY = ("the learner key (ADR 3): the UUID v5, in the namespace "
               f"`{NAMESPACE}`, of `learner:` + the learner's normalised e-mail address "
               "(trimmed, Unicode NFC, lower case, domain in IDNA ASCII form); every record "
               "about one learner has the same key, so they stay in order")
# The Kafka key of each event type, as its `key()` computes it.
KEYS: dict[type[Event], str] = {
    AssessmentResultSubmitted: LEARNER_KEY + ", computed from `learner.email`",
    AssessmentDecided: LEARNER_KEY + " (`learner_key`)",
    CredentialIssued: LEARNER_KEY + " (`learner_key`)",
    CredentialRegistered: LEARNER_KEY + " (`learner_key`)",
    CredentialStatusChanged: LEARNER_KEY + " (`learner_key`)",
    CredentialVisibilityChanged: LEARNER_KEY + " (`learner_key`)",
    LearnerSignInRequested: LEARNER_KEY + " (`learner_key`)",
    WalletTxCodeIssued: LEARNER_KEY + " (`learner_key`)",
    NotificationDelivered: "`credential_id`",
    NotificationFailed: "`credential_id`",
    IssuerKeysPublished: "`provider_id` (compacted: the latest key set per provider)",
    StatusListPublished: "`url` (compacted: the latest list per URL)",
    ProviderApiKeyChanged: "`key_id` (compacted: the latest state per key)",
    EmployerPublished: "`employer_id` (compacted: the latest state per employer)",
    EmployerApiKeyChanged: "`key_id` (compacted: the latest state per key)",
    ProviderPublished: "`provider.id` (compacted: the latest state per provider)",
    DefinitionPublished: "`definition.id` (compacted: the latest version per definition)",
    AuditRecorded: "`provider_id`, or `-` when no provider is concerned",
    BrokerRefusalObserved: "the SCRAM user name concerned, or `-`",
}

SERVICES = {
    "assessment": "judges results against their definition's pass rule; owns providers, "
                  "definitions, API keys, Kafka principals and the audit log",
    "issuance": "signs credentials, keeps issuer keys and status lists",
    "registry": "stores and serves credentials; the learner's wallet and sharing",
    "notify": "mails learners, feeds employers, publishes the employer directory",
    PARTNER: "a partner institution publishing results with its own Kafka principal",
}

# A result as a partner institution publishes it (checked against the schema by the tests).
RESULT_EXAMPLE: dict[str, Any] = {
    "headers": {
        "ce_specversion": SPECVERSION,
        "ce_id": "lakeshore-college/2026-fall/ana-01",
        "ce_type": AssessmentResultSubmitted.ce_type,
        "ce_source": "/providers/lakeshore-college",
        "ce_time": "2026-12-01T14:03:00+00:00",
        "content-type": CONTENT_TYPE,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    },
    "payload": {
        "provider_id": "lakeshore-college",
        "result_id": "2026-fall/ana-01",
        "definition_id": "lakeshore-welding-safety",
        "learner": {"id": "S1029384", "email": "ana.silva@example.org",
                    "given_name": "Ana", "family_name": "Silva", "language": "en"},
        "score": 87.5,
        "assessed_at": "2026-12-01T14:00:00+00:00",
    },
}


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as a plain dict (what docs/asyncapi.yaml holds)."""
    schemas = _payload_schemas()
    channels = _channels()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:ca:microcred:backbone",
        "info": {
            "title": "microcred event backbone",
            "version": _version(),
            "description": PARTNER_GUIDE,
            "tags": [{"name": name, "description": text} for name, text in SERVICES.items()],
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": _servers(),
        "channels": channels,
        "operations": _operations(channels),
        "components": {
            "schemas": schemas,
            "messages": {**{cls.__name__: _message(cls) for cls in event_types().values()},
                         "DeadLetter": _dead_letter_message()},
            "securitySchemes": {"scramSha512": {
                "type": "scramSha512",
                "description": "SASL/SCRAM-SHA-512 over TLS. A partner institution's user "
                               "name is `provider-<provider id>`; the operator hands over the "
                               "password once at onboarding (it is not kept) and can rotate "
                               "or revoke it. Each backbone service has its own principal "
                               "`svc-<service>` (ADR 19).",
            }},
        },
    }


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def channel_id(topic: str) -> str:
    """`microcred.credentials.status.v1.dlq` -> `credentialsStatusDlq`."""
    name = re.sub(r"\.v1(?=\.|$)", "", topic.removeprefix("microcred."))
    words = [w for w in re.split(r"[.\-{}]", name) if w]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


# --- parts ---------------------------------------------------------------------------------


def _version() -> str:
    try:
        return version("microcred-shared")
    except PackageNotFoundError:  # pragma: no cover - run from a bare source tree
        return "0.0.0"


def _servers() -> dict[str, Any]:
    return {
        "production": {
            "host": "{bootstrap}",
            "protocol": "kafka-secure",
            "title": "SASL_SSL listener",
            "summary": "The backbone's Kafka for partner institutions and services: TLS and "
                       "SASL/SCRAM-SHA-512 (security protocol SASL_SSL).",
            "description": "Every principal may write only what its ACLs allow: a partner "
                           "institution writes its own results topic and reads its own "
                           "dead letters, nothing else.",
            "variables": {"bootstrap": {
                "default": "kafka.credentials.example.org:9093",
                "description": "Bootstrap host:port, handed over with your credentials.",
            }},
            "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
        },
        "local": {
            "host": "127.0.0.1:9092",
            "protocol": "kafka",
            "title": "Local development listener",
            "summary": "The devstack's open PLAINTEXT listener (`make up`): trusted, no "
                       "authentication, for development only.",
        },
    }


def _channels() -> dict[str, Any]:
    out: dict[str, Any] = {}
    compacted = set(topics.compacted_topics())
    for topic, classes in TOPIC_EVENTS.items():
        out[channel_id(topic)] = _channel(topic, classes, compacted=topic in compacted)
        out[channel_id(topics.dlq(topic))] = _dlq_channel(topic)
    provider = {"provider": {
        "description": "The provider id of a partner institution onboarded with a Kafka "
                       "principal (lower case letters, digits and `-`; the topic name must "
                       f"match `{topics.PROVIDER_RESULTS_PATTERN}`).",
        "examples": ["lakeshore-college"],
    }}
    results = _channel(PROVIDER_RESULTS, PROVIDER_RESULTS_EVENTS, compacted=False)
    results["title"] = "Results of one partner institution"
    results["description"] = (
        "One topic per partner institution with a Kafka principal (ADR 11): only that "
        "principal may write it, so the topic name, not the record's `ce_source`, tells "
        "assessment who sent a result. Created by assessment at onboarding.")
    results["parameters"] = provider
    dead = _dlq_channel(PROVIDER_RESULTS)
    dead["description"] += (" A partner institution may read its own (consumer group ids "
                            "prefixed with its user name).")
    dead["parameters"] = json.loads(json.dumps(provider))
    out[channel_id(PROVIDER_RESULTS)] = results
    out[channel_id(topics.dlq(PROVIDER_RESULTS))] = dead
    return dict(sorted(out.items()))


def _channel(topic: str, classes: tuple[type[Event], ...], *, compacted: bool) -> dict[str, Any]:
    binding: dict[str, Any] = {"bindingVersion": KAFKA_BINDING}
    if compacted:
        binding["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    return {
        "address": topic,
        "title": topic,
        "description": ("Compacted: the newest record per key is the current state, so a new "
                        "consumer rebuilds its view from the topic alone." if compacted else
                        "A stream of facts, in order per key."),
        "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}
                     for cls in classes},
        "bindings": {"kafka": binding},
    }


def _dlq_channel(topic: str) -> dict[str, Any]:
    return {
        "address": topics.dlq(topic),
        "title": topics.dlq(topic),
        "description": f"Dead letters of `{topic}`: each record a consumer refused, with its "
                       "original key, value and headers and the `dlq_*` headers saying why.",
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING}},
    }


def _operations(channels: dict[str, Any]) -> dict[str, Any]:
    by_address = {ch["address"]: cid for cid, ch in channels.items()}
    out: dict[str, Any] = {}

    def add(service: str, action: str, topic: str, summary: str) -> None:
        cid = by_address[topic]
        verb = {"send": "sends", "receive": "receives"}[action]
        out[f"{service}.{verb}.{cid}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": summary,
            "tags": [{"name": service}],
            "messages": [{"$ref": f"#/channels/{cid}/messages/{mid}"}
                         for mid in channels[cid]["messages"]],
        }

    for service, access in topics.SERVICE_TOPICS.items():
        for topic in access.consumes:
            add(service, "receive", topic, f"{service} consumes `{topic}`.")
        for prefix in access.consumes_prefixed:
            assert prefix == topics.PROVIDER_RESULTS_PREFIX, prefix
            add(service, "receive", PROVIDER_RESULTS,
                f"{service} consumes every partner institution's results topic.")
        for topic in access.produces:
            add(service, "send", topic, f"{service} publishes to `{topic}`.")
        for topic in [*access.consumes, *([PROVIDER_RESULTS] if access.consumes_prefixed
                                          else [])]:
            if topics.dlq(topic) not in access.produces:
                add(service, "send", topics.dlq(topic),
                    f"{service} dead-letters the records of `{topic}` it refuses.")
    add(PARTNER, "send", PROVIDER_RESULTS,
        "A partner institution publishes its assessment results to its own topic.")
    add(PARTNER, "receive", topics.dlq(PROVIDER_RESULTS),
        "A partner institution reads why its refused results were refused.")
    return dict(sorted(out.items()))


def _payload_schemas() -> dict[str, Any]:
    """Each event's JSON Schema, its `$defs` hoisted to components.schemas (one shared set:
    `Learner` is one schema, whichever event it appears in)."""
    out: dict[str, Any] = {}
    for cls in event_types().values():
        schema = _relocate(schema_of(cls))
        schema.pop("$schema", None)
        for name, sub in schema.pop("$defs", {}).items():
            if out.setdefault(name, sub) != sub:
                raise ValueError(f"two different schemas are both named {name!r}")
        out[cls.__name__] = schema
    return dict(sorted(out.items()))


def _relocate(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else
                    _relocate(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_relocate(v) for v in node]
    return node


def _headers(ce_type: str | None) -> dict[str, Any]:
    ce_type_schema: dict[str, Any] = {"type": "string", "description": "The event type."}
    if ce_type is not None:
        ce_type_schema["const"] = ce_type
    return {
        "type": "object",
        "description": "CloudEvents 1.0, Kafka protocol binding, binary content mode: the "
                       "attributes are Kafka headers (UTF-8 strings), the payload is the "
                       "record's value.",
        "required": ["ce_specversion", "ce_id", "ce_type", "ce_source"],
        "properties": {
            "ce_specversion": {"type": "string", "const": SPECVERSION},
            "ce_id": {"type": "string", "minLength": 1,
                      "description": "Unique per event and source. A record sent again with "
                                     "the same id (a retry) is applied once."},
            "ce_type": ce_type_schema,
            "ce_source": {"type": "string", "minLength": 1,
                          "description": "Who sent it, e.g. `/providers/<provider id>` or "
                                         "`/microcred/<service>`. On a partner institution's "
                                         "own topic the topic decides, not this header."},
            "ce_time": {"type": "string", "format": "date-time",
                        "description": "When it happened (RFC 3339); the time of receipt "
                                       "when absent."},
            "ce_subject": {"type": "string"},
            "content-type": {"type": "string", "const": CONTENT_TYPE,
                             "description": "The payload's media type (the default)."},
            "traceparent": {"type": "string",
                            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                            "description": "W3C trace context: one trace per assessment."},
            "tracestate": {"type": "string"},
        },
    }


def _message(cls: type[Event]) -> dict[str, Any]:
    doc = (cls.__doc__ or cls.__name__).strip()
    summary = " ".join(doc.split("\n\n")[0].split())
    message: dict[str, Any] = {
        "name": cls.__name__,
        "title": cls.ce_type,
        "summary": summary,
        "contentType": CONTENT_TYPE,
        "headers": _headers(cls.ce_type),
        "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
        "bindings": {"kafka": {
            "key": {"type": "string", "description": "The record key: " + KEYS[cls] + "."},
            "bindingVersion": KAFKA_BINDING,
        }},
    }
    if cls is AssessmentResultSubmitted:
        message["examples"] = [{"name": "aScore", "summary": "A scored result, as a partner "
                                "institution publishes it", **json.loads(json.dumps(
                                    RESULT_EXAMPLE))}]
    return message


def _dead_letter_message() -> dict[str, Any]:
    headers = _headers(None)
    headers["description"] = ("The refused record's own headers (as they came, possibly "
                              "incomplete), and why it was refused.")
    headers["required"] = ["dlq_id", "dlq_reason", "dlq_service", "dlq_topic"]
    headers["properties"].update({
        "dlq_id": {"type": "string", "description": "`<topic>:<partition>:<offset>` of the "
                   "refused record: a reader drops a repeat with the same id."},
        "dlq_reason": {"type": "string", "maxLength": 2000,
                       "description": "Why, in plain words."},
        "dlq_service": {"type": "string", "description": "The service that refused it."},
        "dlq_topic": {"type": "string", "description": "Where it came from."},
        "dlq_partition": {"type": "string", "pattern": "^[0-9]+$"},
        "dlq_offset": {"type": "string", "pattern": "^[0-9]+$"},
    })
    return {
        "name": "DeadLetter",
        "title": "A refused record",
        "summary": "A record a consumer refused: its original key, value and headers, "
                   "and the reason.",
        "description": "The value is the original bytes, which need not be valid JSON (that "
                       "may be why it was refused). Operators replay dead letters once the "
                       "cause is fixed (`python -m microcred_shared.dlq`, ADR 16).",
        "headers": headers,
        "payload": {"description": "The refused record's original value, unchanged."},
        "bindings": {"kafka": {"key": {"type": "string",
                                       "description": "The refused record's own key."},
                               "bindingVersion": KAFKA_BINDING}},
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, and no `&anchor`/`*alias` for repeated parts."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


PARTNER_GUIDE = """\
The Kafka side of microcred, the micro-credentials backbone: every topic, who publishes and
who consumes it, and the exact payload of every event. Generated from the code
(`python -m microcred_shared.contract.tools asyncapi --write`); docs/events.md explains how
the contract evolves.

## Publishing results as a partner institution

1. **Credentials.** At onboarding the operator gives you, once: a SCRAM-SHA-512 user name
   `provider-<your provider id>` and its password, the bootstrap address, your topic
   `microcred.assessment.results.<your provider id>.v1` and its dead-letter topic (`.dlq`).
2. **Connect** to the `production` server with security protocol `SASL_SSL` and SASL
   mechanism `SCRAM-SHA-512`. Your principal may write your topic and nothing else, and read
   your dead-letter topic with consumer group ids prefixed with your user name.
3. **Publish** one record per result (operation `partner.sends.assessmentResultsProvider`):
   - topic: your own results topic;
   - key: the learner key of the learner's e-mail address (see the message's Kafka binding),
     so that one learner's results stay in order;
   - value: the JSON of an `AssessmentResultSubmitted` (UTF-8); `provider_id` must be yours,
     `definition_id` one of your definitions (or one you co-issue);
   - headers (CloudEvents 1.0 binary mode): `ce_specversion: 1.0`, `ce_id` (unique per
     result; a retry with the same id is applied once), `ce_type:
     ca.microcred.assessment.result.submitted.v1`, `ce_source: /providers/<your provider id>`,
     `ce_time` (RFC 3339), `content-type: application/json`, and `traceparent` if you trace.
4. **Check refusals** on your dead-letter topic (operation
   `partner.receives.assessmentResultsProviderDlq`): a record that is malformed, names
   another provider or a definition you may not use, comes from a suspended provider, or
   whose outcome does not fit the pass rule is not judged; its copy lands there with a
   `dlq_reason` header. A result sent twice (same `result_id`) is judged once.
"""
