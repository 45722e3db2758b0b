"""How a service logs in to Kafka (settings) and what its principal may do (ACLs derived
from the topic map), ADR 19."""

from __future__ import annotations

from typing import ClassVar

import pytest
from faststream.kafka.security import parse_security
from pydantic import ValidationError

from microcred_shared.contract import topics
from microcred_shared.kafka_acls import Acl, Operation, Pattern, Resource, service_acls
from microcred_shared.settings import ServiceSettings

SASL = {"MICROCRED_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MICROCRED_KAFKA_SASL_USERNAME": "svc-issuance",
        "MICROCRED_KAFKA_SASL_PASSWORD": "s3cret-pa55word"}


@pytest.fixture
def sasl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SASL.items():
        monkeypatch.setenv(k, v)


def test_by_default_a_service_connects_without_logging_in():
    s = ServiceSettings()
    assert s.kafka_client_options() == {} and s.kafka_security() is None


def test_with_sasl_every_client_gets_the_same_scram_login(sasl_env: None):
    s = ServiceSettings()
    options = s.kafka_client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "svc-issuance", "s3cret-pa55word")
    assert parse_security(s.kafka_security()) == options  # FastStream's broker: the same


def test_sasl_ssl_adds_a_verifying_tls_context(sasl_env: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MICROCRED_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    s = ServiceSettings()
    options = s.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["ssl_context"].check_hostname
    assert parse_security(s.kafka_security())["security_protocol"] == "SASL_SSL"


def test_the_password_never_shows_in_the_settings_repr_or_dump(sasl_env: None):
    s = ServiceSettings()
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "s3cret-pa55word" not in text


def test_sasl_without_a_username_or_password_is_refused_at_start(
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MICROCRED_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="MICROCRED_KAFKA_SASL_USERNAME"):
        ServiceSettings()


def _can(service: str, op: Operation, topic: str) -> bool:
    """What the broker's authorizer would decide for a topic, given the service's ACLs."""
    for acl in service_acls(service):
        if acl.resource != Resource.TOPIC or acl.operation != op:
            continue
        if topic == acl.name or (acl.pattern == Pattern.PREFIXED and topic.startswith(acl.name)):
            return True
    return False


def test_each_principal_may_read_what_it_consumes_and_write_what_it_produces_only():
    for service, access in topics.SERVICE_TOPICS.items():
        for topic in topics.all_topics():
            assert _can(service, Operation.READ, topic) == (
                topic in access.consumes
                or any(topic.startswith(p) for p in access.consumes_prefixed)), (service, topic)
            assert _can(service, Operation.WRITE, topic) == (
                topic in access.produces
                or topic in {topics.dlq(t) for t in access.consumes}), (service, topic)


def test_issuance_may_not_forge_decisions_nor_read_results():
    assert not _can("issuance", Operation.WRITE, topics.DECISIONS)
    assert not _can("issuance", Operation.READ, topics.RESULTS)
    assert _can("issuance", Operation.WRITE, topics.dlq(topics.DECISIONS))  # dead letters
    assert not _can("registry", Operation.WRITE, topics.CREDENTIALS_ISSUED)


def test_only_assessment_may_onboard_providers():
    provider_topic = topics.provider_results("lakeshore")
    assert _can("assessment", Operation.READ, provider_topic)
    assert _can("assessment", Operation.CREATE, provider_topic)
    cluster = {a for s in topics.SERVICE_TOPICS for a in service_acls(s)
               if a.resource == Resource.CLUSTER}
    assert cluster == {Acl(Resource.CLUSTER, "kafka-cluster", Pattern.LITERAL, Operation.ALTER)}
    assert cluster <= set(service_acls("assessment"))
    for service in ("issuance", "registry", "notify"):
        assert not any(a.operation == Operation.CREATE for a in service_acls(service))


def test_a_service_joins_only_consumer_groups_named_after_it():
    class Notify(ServiceSettings):
        service: ClassVar[str] = "notify"

    groups = {a.name for a in service_acls("notify") if a.resource == Resource.GROUP}
    assert groups == {"microcred-notify."}
    # ServiceRuntime names each subscription's group `<consumer_group>.<topic>`.
    assert f"{Notify().consumer_group}.{topics.LEARNER_SIGNIN}".startswith(groups.pop())
