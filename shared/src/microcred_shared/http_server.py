"""uvicorn's server with a main loop that sleeps until it has something to do.

uvicorn's `Server.main_loop` wakes every 100 ms to see whether a signal asked it to stop
and, every tenth time, to refresh the `date` header: ten wake-ups a second in every
service, a fifth of an idle service's CPU once its Kafka consumers stopped polling
(bench/e2e/README.md, issue 12, wave 14). Here the loop waits for the exit signal itself
(the signal handler wakes it) and otherwise goes round once a second, as often as the
header changes. Anything else that sets `should_exit` is seen within that second."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from types import FrameType

import uvicorn

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
