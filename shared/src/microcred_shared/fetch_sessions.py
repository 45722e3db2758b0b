"""Incremental fetch sessions (KIP-227) for aiokafka's consumer, which sends only full ones.

aiokafka 0.14 builds every Fetch (v11 with Kafka 3/4) with session id 0 and epoch -1: a
sessionless, full fetch. Each one names every assigned partition of the subscription (8 per
topic here) and each answer carries all of them, records or not, so a batch of one record
costs the broker and the client's Python protocol code eight partitions each way (issue 12:
the consumer's fetch was the largest Python layer of a batch at a few hundred per second).

With a session the broker keeps what the consumer last asked for. The first request of a
session is full (epoch 0 opens it); each later one (epoch 1, 2, ...) names only the
partitions whose fetch position changed, plus those to drop, and its answer carries only
the partitions that have records, a new high watermark or start offset, or an error. What
the consumer reads is the same: the broker reads each partition at the position the
consumer last sent for it, so a partition the request leaves out is read where it was.

Any failure (an error code on the answer, a request that failed or was abandoned) makes the
next request a full one that closes the old session and opens a new one, as the Java client
does. A broker that answers with session id 0 (its cache full, or a version before 7) keeps
being sent full fetches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from aiokafka.protocol.fetch import FetchRequest

log = logging.getLogger(__name__)

INITIAL_EPOCH = 0  # with session id 0: open a session; with an id: close it, open another
FINAL_EPOCH = -1  # with session id 0: a sessionless fetch (what aiokafka sends)
SESSION_ERRORS = {70: "FETCH_SESSION_ID_NOT_FOUND", 71: "INVALID_FETCH_SESSION_EPOCH"}

Key = tuple[str, int]  # topic, partition
Wanted = dict[Key, tuple[int, int]]  # fetch offset, max bytes


class FetchSession:
    """The consumer's side of one session with one broker: its id, the epoch of the next
    request and what the broker was last told (partition -> offset and max bytes)."""

    def __init__(self) -> None:
        self.id = 0
        self.epoch = INITIAL_EPOCH
        self.sent: Wanted = {}
        self.full_requests = 0
        self.incremental_requests = 0

    def request(self, full: FetchRequest) -> SessionFetch:
        """The session's request for what `full` (aiokafka's own) asks."""
        wanted: Wanted = {(topic, partition): (offset, max_bytes)
                          for topic, partitions in full.topics
                          for partition, offset, max_bytes in partitions}
        if self.epoch == INITIAL_EPOCH:
            changed, forgotten = wanted, []
            self.full_requests += 1
        else:
            changed = {key: at for key, at in wanted.items() if self.sent.get(key) != at}
            forgotten = [key for key in self.sent if key not in wanted]
            self.incremental_requests += 1
        return SessionFetch(full, self, wanted, changed, forgotten)

    def answered(self, request: SessionFetch, response: Any) -> None:
        """Take the broker's answer to `request` (the session's latest)."""
        if response.API_VERSION < 7:  # no sessions: every request stays full
            self.reset(keep_id=False)
            return
        if response.error_code:
            log.info("fetch session %d reset by the broker: %s", self.id,
                     SESSION_ERRORS.get(response.error_code, response.error_code))
            self.reset(keep_id=response.error_code != 70)
            return
        if request.epoch == INITIAL_EPOCH:
            self.id = response.session_id
            self.epoch = 1 if self.id else INITIAL_EPOCH
        else:
            self.epoch = self.epoch + 1 if self.epoch < 2**31 - 1 else 1
        self.sent = request.wanted

    def reset(self, *, keep_id: bool = True) -> None:
        """Send the next request in full: with the id kept, it closes the old session."""
        if not keep_id:
            self.id = 0
        self.epoch = INITIAL_EPOCH
        self.sent = {}


class SessionFetch(FetchRequest):
    """A Fetch within a session. `topics` is every partition the session now holds, at the
    positions aiokafka asked for (what aiokafka reads the answer against); the request on
    the wire carries only `changed` and `forgotten`."""

    def __init__(self, full: FetchRequest, session: FetchSession, wanted: Wanted,
                 changed: Wanted, forgotten: list[Key]) -> None:
        super().__init__(full._max_wait_ms, full._min_bytes, full._max_bytes,
                         full._isolation_level, full.topics, rack_id=full._rack_id)
        self.full = full
        self.session = session
        self.session_id, self.epoch = session.id, session.epoch
        self.wanted, self.changed, self.forgotten = wanted, changed, forgotten

    def build(self, request_struct_class: Any) -> Any:
        version = request_struct_class.API_VERSION
        if version < 7:
            return self.full.build(request_struct_class)
        topics: dict[str, list[tuple[int, ...]]] = defaultdict(list)
        for (topic, partition), (offset, max_bytes) in self.changed.items():
            topics[topic].append((partition, -1, offset, -1, max_bytes) if version >= 9
                                 else (partition, offset, -1, max_bytes))
        forgotten: dict[str, list[int]] = defaultdict(list)
        for topic, partition in self.forgotten:
            forgotten[topic].append(partition)
        args: list[object] = [-1, self._max_wait_ms, self._min_bytes, self._max_bytes,
                              self._isolation_level, self.session_id, self.epoch,
                              list(topics.items()), list(forgotten.items())]
        if version >= 11:
            args.append(self._rack_id)
        return request_struct_class(*args)


class SessionClient:
    """The fetcher's view of aiokafka's client: Fetches go out within the node's session
    and their answers (or failures) update it; everything else passes through."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sessions: dict[int, FetchSession] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send(self, node_id: int, request: Any, **kwargs: Any) -> Any:
        if not isinstance(request, SessionFetch):
            return await self._client.send(node_id, request, **kwargs)
        try:
            response = await self._client.send(node_id, request, **kwargs)
        except (Exception, asyncio.CancelledError):
            # Sent or not, answered or not: the broker's epoch is unknown; start afresh.
            request.session.reset()
            raise
        request.session.answered(request, response)
        return response

    def session(self, node_id: int) -> FetchSession:
        return self.sessions.setdefault(node_id, FetchSession())


def use_fetch_sessions(consumer: Any) -> SessionClient:
    """Make a started aiokafka consumer's fetches incremental (its next fetch onwards).

    aiokafka's fetcher keeps at most one fetch in flight per broker, so each session's
    requests and answers alternate, as the protocol requires."""
    fetcher = consumer._fetcher
    client = fetcher._client
    if not isinstance(client, SessionClient):
        client = SessionClient(client)
        fetcher._client = client
    actions = type(fetcher)._get_actions_per_node

    def per_node(assignment: Any) -> Any:
        requests, *rest = actions(fetcher, assignment)
        return ([(node_id, client.session(node_id).request(request))
                 for node_id, request in requests], *rest)

    fetcher._get_actions_per_node = per_node
    return client
