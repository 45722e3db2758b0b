"""The services' HTTP server sleeps until it has something to do: a SIGTERM still stops it
at once (its main loop is woken by the signal handler, not found by a 100 ms timer), and
the responses keep their `date` header."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import uvicorn

from microcred_shared.http_server import QuietServer


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # never called
    raise AssertionError("no request in these tests")


def quiet_server() -> QuietServer:
    config = uvicorn.Config(app, log_level="warning")
    config.load()
    server = QuietServer(config)
    server.tick_seconds = 3600.0  # no timer would end these tests: only the signal can
    return server


async def test_a_sigterm_ends_the_main_loop_without_waiting_for_a_tick() -> None:
    server = quiet_server()
    loop = asyncio.create_task(server.main_loop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not loop.done()
    # what uvicorn's signal handler does when the service gets SIGTERM
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(loop, timeout=30)  # a guard against a hang, not a measurement
    assert server.should_exit


async def test_a_signal_before_the_main_loop_ends_it_at_once() -> None:
    server = quiet_server()
    server.handle_exit(signal.SIGTERM, None)  # during start-up: nothing to wake yet
    await asyncio.wait_for(server.main_loop(), timeout=30)


async def test_responses_keep_their_date_header() -> None:
    server = quiet_server()
    loop = asyncio.create_task(server.main_loop())
    await asyncio.sleep(0)
    names = [name for name, _ in server.server_state.default_headers]
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(loop, timeout=30)
    assert b"date" in names
