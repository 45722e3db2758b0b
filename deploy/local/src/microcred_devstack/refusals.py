"""The demo's deliberate refusals: an attempt that the broker must refuse (a wrong password, a
write outside a principal's ACLs), shown as one explained line instead of the client
library's error logs and tracebacks, which a newcomer reads as the demo failing.

While the attempt runs, the client's loggers keep what they say to themselves (nothing
reaches the console); the refusal becomes one line. If the attempt is *not* refused, that
is a real failure of the security the demo shows: the line says so, and what the client
logged is kept on the result for the caller to show.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

# aiokafka logs a refused login or a denied topic at ERROR/WARNING, some with a traceback.
CLIENT_LOGGERS = ("aiokafka", "kafka")
# "[Error 58] SaslAuthenticationFailed: Authentication failed ..." in an exception or a log
# line: the broker's own reason. A refused login surfaces as "Unable to bootstrap" and only
# the client's log says why.
_BROKER_ERROR = re.compile(r"\[Error \d+\] (\w+): (.+)")


@dataclass
class Refusal:
    what: str  # the attempt, in the demo's words
    refused: bool
    reason: str | None  # the broker's reason (else the client's exception), in one line
    captured: list[logging.LogRecord] = field(default_factory=list)

    @property
    def line(self) -> str:
        if self.refused:
            return f"refused as expected: {self.what} ({self.reason})"
        return f"NOT refused: {self.what} went through; the broker should have refused it"


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs(names: Sequence[str] = CLIENT_LOGGERS) -> Iterator[list[logging.LogRecord]]:
    """The named loggers' records go to the yielded list instead of any handler."""
    keep = _Keep()
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.handlers[:]))
        logger.handlers[:] = [keep]
        logger.propagate = False
    try:
        yield keep.records
    finally:
        for logger, propagate, handlers in saved:
            logger.handlers[:] = handlers
            logger.propagate = propagate


def _one_line(text: str) -> str:
    return " ".join(text.split())


def reason_of(exc: BaseException, records: Sequence[logging.LogRecord]) -> str:
    """The broker's reason from the exception or, failing that, the client's log lines."""
    for text in (str(exc), *(r.getMessage() for r in records)):
        if found := _BROKER_ERROR.search(text):
            return f"{found[1]}: {_one_line(found[2])}"
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def expect_refusal(what: str, attempt: Callable[[], Awaitable[object]], *,
                         refused_by: tuple[type[BaseException], ...] = (KafkaError,),
                         loggers: Sequence[str] = CLIENT_LOGGERS) -> Refusal:
    """Run `attempt`, which the broker should refuse with one of `refused_by`."""
    with captured_logs(loggers) as records:
        try:
            await attempt()
        except refused_by as exc:
            return Refusal(what, True, reason_of(exc, records), records)
    return Refusal(what, False, None, records)


__all__ = ["CLIENT_LOGGERS", "Refusal", "captured_logs", "expect_refusal", "reason_of"]
