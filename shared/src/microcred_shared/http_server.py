"""uvicorn's server with a main loop that sleeps until it has something to do.

uvicorn's `Server.main_loop` wakes every 100 ms to see whether a signal asked it to stop
and, every tenth time, to refresh the `date` header: ten wake-ups a second in every
service, a fifth of an idle service's CPU once its Kafka consumers stopped polling
(bench/e2e/README.md, issue 12, wave 14). Here the loop waits for the exit signal itself
(the signal handler wakes it) and otherwise goes round once a second, as often as the
header changes. Anything else that sets `should_exit` is seen within that second.

And an HTTP protocol whose answers leave in one write: uvicorn writes a response's status
line and headers when the app sends them and its body when that comes, two `send`
system calls and two TCP segments for the small answer of one result per request, the
client woken twice (issue 12, item 2, wave 16). `OneWriteHttpTools` gathers what the
response writes while the loop runs it and hands it to the socket once, before the loop
next waits: the same bytes, in the same order, a turn of the loop later at most."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# uvicorn's own main loop counts 100 ms ticks and refreshes the date header at every tenth.
_TICKS_PER_SECOND = 10
_COUNTER_WRAP = 864_000


class QuietServer(uvicorn.Server):
    tick_seconds = 1.0  # how long the main loop sleeps when nothing wakes it

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler runs between two bytecodes of the main thread, possibly inside
        # the event loop: call_soon_threadsafe is the way to wake it from there.
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
            self._wake.clear()
            # every tick is a whole second of uvicorn's count: the date header is refreshed
            counter = (counter + _TICKS_PER_SECOND) % _COUNTER_WRAP
            should_exit = await self.on_tick(counter)


class _GatheredWrites:
    """A transport whose writes in one turn of the loop reach the socket in one write (see
    the module docstring). Everything else is the transport's own; closing, aborting or
    ending the stream first hands on (or, aborting, drops) what is gathered."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._hand_on)
        # bytes are kept as they are; a buffer the caller might reuse is copied
        self._pending.append(data if isinstance(data, bytes) else bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _hand_on(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def close(self) -> None:
        self._hand_on()
        self._transport.close()

    def write_eof(self) -> None:
        self._hand_on()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, its responses written once (`_GatheredWrites`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        gathered: Any = _GatheredWrites(transport, self.loop)
        super().connection_made(gathered)
