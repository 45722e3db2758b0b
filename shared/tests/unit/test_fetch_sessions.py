"""Incremental fetch sessions without a broker: what each request carries on the wire, and
what makes the next one full again (the real broker's side is
shared/tests/test_fetch_sessions_broker.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11

from microcred_shared.fetch_sessions import FetchSession, SessionClient, SessionFetch


def full(positions: dict[int, int], topic: str = "t") -> FetchRequest:
    """aiokafka's own request for partitions of `topic` at these positions."""
    return FetchRequest(2000, 1, 52428800, 0,
                        [(topic, [(p, at, 1048576) for p, at in positions.items()])])


def answer(session_id: int = 7, error: int = 0, version: int = 11) -> Any:
    return SimpleNamespace(API_VERSION=version, error_code=error, session_id=session_id)


def wire(request: SessionFetch) -> dict[str, Any]:
    s = request.build(FetchRequest_v11)
    return {"session": (s.session_id, s.session_epoch),
            "partitions": sorted(p[0] for _, parts in s.topics for p in parts),
            "offsets": {p[0]: p[2] for _, parts in s.topics for p in parts},
            "forgotten": sorted(p for _, parts in s.forgotten_topics_data for p in parts)}


EIGHT = dict.fromkeys(range(8), 0)


def test_the_first_request_opens_a_session_with_every_partition() -> None:
    session = FetchSession()
    first = session.request(full(EIGHT))
    assert wire(first) == {"session": (0, 0), "partitions": list(range(8)),
                           "offsets": EIGHT, "forgotten": []}


def test_later_requests_carry_only_the_partitions_that_moved() -> None:
    session = FetchSession()
    session.answered(first := session.request(full(EIGHT)), answer(session_id=7))
    assert first.epoch == 0
    moved = {**EIGHT, 3: 5}
    second = session.request(full(moved))
    assert wire(second) == {"session": (7, 1), "partitions": [3], "offsets": {3: 5},
                            "forgotten": []}
    # what the fetcher reads the answer against: every partition of the session
    assert {p: at for _, parts in second.topics for p, at, _ in parts} == moved
    session.answered(second, answer(session_id=7))
    third = session.request(full(moved))
    assert wire(third)["session"] == (7, 2)
    assert wire(third)["partitions"] == []  # nothing moved: the broker keeps reading where it was


def test_a_partition_left_out_is_forgotten_and_sent_again_when_it_comes_back() -> None:
    session = FetchSession()
    session.answered(session.request(full(EIGHT)), answer())
    without = {p: at for p, at in EIGHT.items() if p != 2}  # e.g. paused, or records held
    request = session.request(full(without))
    assert wire(request)["forgotten"] == [2]
    session.answered(request, answer())
    back = session.request(full(EIGHT))
    assert wire(back)["partitions"] == [2] and wire(back)["forgotten"] == []


@pytest.mark.parametrize(("error", "next_session"), [(70, (0, 0)), (71, (7, 0))])
def test_a_session_error_makes_the_next_request_full(error: int,
                                                     next_session: tuple[int, int]) -> None:
    session = FetchSession()
    session.answered(session.request(full(EIGHT)), answer(session_id=7))
    session.answered(session.request(full(EIGHT)), answer(session_id=7, error=error))
    again = session.request(full(EIGHT))
    # unknown session: open a new one; wrong epoch: close session 7 and open a new one
    assert wire(again)["session"] == next_session
    assert wire(again)["partitions"] == list(range(8))


def test_a_broker_without_a_session_for_us_gets_full_fetches() -> None:
    session = FetchSession()
    session.answered(session.request(full(EIGHT)), answer(session_id=0))  # its cache full
    assert wire(session.request(full(EIGHT)))["partitions"] == list(range(8))


def test_before_fetch_v7_the_request_is_aiokafkas_own() -> None:
    session = FetchSession()
    request = session.request(full(EIGHT))
    built = request.build(FetchRequest_v4)
    assert sorted(p[0] for _, parts in built.topics for p in parts) == list(range(8))
    session.answered(request, answer(version=4))
    assert session.request(full(EIGHT)).epoch == 0


class Client:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail

    async def send(self, node_id: int, request: Any, **_: Any) -> Any:
        if self.fail:
            raise self.fail
        return answer()


@pytest.mark.parametrize("fail", [ConnectionError("broker gone"), asyncio.CancelledError()])
async def test_a_fetch_that_failed_or_was_abandoned_restarts_the_session(
        fail: BaseException) -> None:
    """The broker may or may not have taken the lost request's epoch: the next is full."""
    client = SessionClient(Client())
    session = client.session(1)
    await client.send(1, session.request(full(EIGHT)))
    await client.send(1, session.request(full({**EIGHT, 1: 3})))
    assert session.epoch == 2
    client._client = Client(fail)
    with pytest.raises(type(fail)):
        await client.send(1, session.request(full({**EIGHT, 1: 4})))
    assert wire(session.request(full(EIGHT)))["session"] == (7, 0)
