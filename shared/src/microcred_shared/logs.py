"""Process logging: text for people (the local stack's log files), or one JSON object per
line for a log pipeline, each carrying the service and, inside a span, the trace and span
ids, so a log line leads to its trace (MICROCRED_LOG_FORMAT=json; ADR 17)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime

from opentelemetry import trace

TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "service": self.service,
            "logger": record.name, "message": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            line["trace_id"] = format(ctx.trace_id, "032x")
            line["span_id"] = format(ctx.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Lets the first record of a kind through, then at most one per `window` seconds that
    says how many were held back. A kind is the logger, level and message template: during
    a broker or database outage aiokafka, FastStream and our own retry loops each repeat
    one line hundreds of times a second (issue 13), which drowns the lines an operator
    needs. Different messages are never held back by each other."""

    def __init__(self, window: float = 30.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # kind -> [last, held]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is None or now - seen[0] >= self.window:
                held = int(seen[1]) if seen else 0
                self._seen[kind] = [now, 0]
                if len(self._seen) > 10_000:  # messages with ever new templates
                    self._seen.clear()
                if held:
                    record.msg = f"{record.msg} [and {held} more like it in the last " \
                                 f"{self.window:.0f} s]"
                return True
            seen[1] += 1
            return False


class Outages:
    """A few lines per state change of a dependency: down (with the first error), still
    down every `every` seconds with a count, back (with how long it was out)."""

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self._down: dict[str, list[float]] = {}  # name -> [since, failures, last line]
        self._log = logging.getLogger("microcred.outages")

    def is_down(self, name: str) -> bool:
        return name in self._down

    def down(self, name: str, error: BaseException | str | None = None) -> None:
        now = time.monotonic()
        state = self._down.get(name)
        if state is None:
            self._down[name] = [now, 1, now]
            self._log.warning("%s unavailable: %s", name, _brief(error))
            return
        state[1] += 1
        if now - state[2] >= self.every:
            state[2] = now
            self._log.warning("%s still unavailable after %.0f s (%d failures): %s", name,
                              now - state[0], state[1], _brief(error))

    def up(self, name: str) -> None:
        state = self._down.pop(name, None)
        if state is not None:
            self._log.warning("%s back after %.0f s (%d failures)", name,
                              time.monotonic() - state[0], int(state[1]))


def _brief(error: BaseException | str | None) -> str:
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
    else:
        text = error or "-"
    return text.splitlines()[0][:300] if text else "-"


outages = Outages()


def failure(logger: logging.Logger, message: str, exc: BaseException, *args: object) -> None:
    """A background loop's failure: a database outage is said by `outages` (a line per
    state change), anything else with its traceback."""
    from microcred_shared.db import unavailable

    if unavailable(exc):
        outages.down("database", exc)
    else:
        logger.exception(message, *args)


def configure(service: str, fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else logging.Formatter(TEXT))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
