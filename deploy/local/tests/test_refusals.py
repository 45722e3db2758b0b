"""The demo's deliberate refusals become one explained line each: the Kafka client's own error
logs (and tracebacks) are kept off the console while the attempt runs, and the broker's reason
is taken from them when the exception does not carry it."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from microcred_devstack.refusals import expect_refusal

SASL_REASON = ("Authentication failed during authentication due to invalid credentials with "
               "SASL mechanism SCRAM-SHA-512")


async def _wrong_password() -> None:
    """What aiokafka does on a refused SCRAM login: it logs the broker's answer with a
    traceback, then raises an error that only says it could not bootstrap."""
    try:
        raise OSError("connection closed by the broker")
    except OSError:
        logging.getLogger("aiokafka.conn").error(
            'Unable connect to "127.0.0.1:9094": [Error 58] SaslAuthenticationFailed: %s',
            SASL_REASON, exc_info=True)
    logging.getLogger("aiokafka.client").error("Unable to update metadata from [0]")
    raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9094)]")


async def test_a_refused_login_is_one_explained_line_and_nothing_of_the_clients_log_shows(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    r = await expect_refusal("ocsc logging in with an old password", _wrong_password)

    assert r.refused
    assert r.line == ("refused as expected: ocsc logging in with an old password "
                      f"(SaslAuthenticationFailed: {SASL_REASON})")
    assert [rec.name for rec in r.captured] == ["aiokafka.conn", "aiokafka.client"]
    assert caplog.records == []  # nothing reached the root logger's handlers
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Unable connect" not in err and out == ""


async def test_the_client_loggers_are_restored_after_the_attempt(
        caplog: pytest.LogCaptureFixture) -> None:
    client = logging.getLogger("aiokafka")
    before = (client.propagate, client.handlers[:])
    await expect_refusal("a refused login", _wrong_password)
    assert (client.propagate, client.handlers) == before
    with caplog.at_level(logging.WARNING):
        logging.getLogger("aiokafka.conn").warning("a real problem later")
    assert [rec.getMessage() for rec in caplog.records] == ["a real problem later"]


async def test_a_write_outside_the_acls_is_explained_by_the_exception_itself() -> None:
    async def write() -> None:
        logging.getLogger("aiokafka.producer").warning(
            "Topic microcred.assessment.results.v1 is not authorized for this client")
        raise TopicAuthorizationFailedError("microcred.assessment.results.v1")

    r = await expect_refusal("ocsc writing to microcred.assessment.results.v1", write)
    assert r.line == ("refused as expected: ocsc writing to microcred.assessment.results.v1 "
                      "(TopicAuthorizationFailedError: microcred.assessment.results.v1)")


async def test_an_attempt_that_goes_through_is_reported_as_not_refused() -> None:
    async def allowed() -> None:
        logging.getLogger("aiokafka").warning("sent")

    r = await expect_refusal("a write the ACLs should deny", allowed)
    assert not r.refused and r.reason is None
    assert r.line.startswith("NOT refused: a write the ACLs should deny went through")
    assert [rec.getMessage() for rec in r.captured] == ["sent"]


async def test_an_error_that_is_not_a_refusal_is_not_hidden() -> None:
    async def broken() -> None:
        raise ValueError("a bug in the demo")

    with pytest.raises(ValueError, match="a bug in the demo"):
        await expect_refusal("a refused login", broken)
    assert logging.getLogger("aiokafka").propagate
