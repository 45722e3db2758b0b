"""The HTTP server protocol's own CPU per keep-alive request, in process (issue 12, item 2,
wave 17): no sockets, no app work — what uvicorn's per-request objects cost (a scope, a
`RequestResponseCycle`, an event, a task, the keep-alive timer), against a deliberately
minimal protocol that only parses, builds a scope, runs the app in a task and writes its
answer once: the most a leaner protocol of our own could save.

    uv run python bench/e2e/http_protocol.py                 # uvicorn's, ours, the minimal one
    uv run python bench/e2e/http_protocol.py --cprofile 25   # + the costliest functions

Each of `--clients` connections sends one-result requests (the bench's headers, a body of
the bench's size) one after the other, the next once the answer's last byte was written;
the app answers a 202 of the ingest route's size. uvicorn's proxy-headers middleware wraps
the app as `runtime.serve` runs it. The minimal protocol is a ceiling, not a candidate: it
has no pipelining, `Expect: 100-continue`, chunked or streamed bodies, flow control,
keep-alive timeout, disconnect handling or error answers.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from typing import Any

import httptools
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from microcred_shared.http_server import OneWriteHttpTools

ANSWER = (b'{"assessment_id":"0b9a4a3e-6f1d-5c3b-9d8e-2a7c1b0e4f55","outcome":"accepted",'
          b'"status_url":"http://127.0.0.1:8101/v1/assessment-results/0b9a4a3e-6f1d-5c3b-'
          b'9d8e-2a7c1b0e4f55","event_id":"7f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"}')
BODY = b'{"result":"' + b"x" * 640 + b'"}'
REQUEST = (b"POST /v1/assessment-results HTTP/1.1\r\nhost: 127.0.0.1:8101\r\n"
           b"accept: */*\r\naccept-encoding: gzip, deflate\r\nconnection: keep-alive\r\n"
           b"authorization: Bearer mcp_bench0001.secret-1-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
           b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY)) + BODY


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(ANSWER))]})
    await send({"type": "http.response.body", "body": ANSWER})


class Minimal(asyncio.Protocol):
    """The ceiling (see the module docstring): parse, a scope, a task, one write."""

    def __init__(self, config: uvicorn.Config, server_state: ServerState,
                 app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.loop, self.state = config.loaded_app, _loop, server_state
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server = transport.get_extra_info("sockname")
        self.client = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], []  # type: ignore[var-annotated]

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self.url)
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "server": self.server, "client": self.client,
                 "scheme": "http", "root_path": "", "headers": self.headers, "state": {},
                 "method": self.parser.get_method().decode(), "path": url.path.decode(),
                 "raw_path": url.path, "query_string": url.query or b""}
        self.loop.create_task(self._run(scope, b"".join(self.body)))

    async def _run(self, scope: dict[str, Any], body: bytes) -> None:
        out: list[bytes] = []
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Future()  # the client stays
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out.append(STATUS_LINE[message["status"]])
                for name, value in [*self.state.default_headers, *message["headers"]]:
                    out.extend((name, b": ", value, b"\r\n"))
                out.append(b"\r\n")
            else:
                out.append(message.get("body", b""))
                self.transport.write(b"".join(out))

        await self.app(scope, receive, send)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.answered: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8101),
                "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: Any) -> None:
        if bytes(data).endswith(ANSWER[-8:]) and self.answered is not None:
            self.answered.set_result(None)
            self.answered = None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _connection(protocol: type[Any], config: uvicorn.Config, state: ServerState,
                      requests: int) -> None:
    loop = asyncio.get_running_loop()
    transport = _Transport()
    proto = protocol(config=config, server_state=state, app_state={}, _loop=loop)
    proto.connection_made(transport)
    for _ in range(requests):
        transport.answered = answered = loop.create_future()
        proto.data_received(REQUEST)
        await answered
    if hasattr(proto, "connection_lost") and isinstance(proto, HttpToolsProtocol):
        proto.connection_lost(None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--cprofile", type=int, default=0, metavar="TOP")
    args = ap.parse_args()
    protocols = {"uvicorn httptools": HttpToolsProtocol, "ours (OneWriteHttpTools)":
                 OneWriteHttpTools, "minimal (ceiling)": Minimal}
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    per = args.n // args.clients
    figures: dict[str, list[float]] = {name: [] for name in protocols}
    for r in range(args.rounds + 1):  # round 0 warms up; protocols alternate per round
        for name, protocol in protocols.items():
            state = ServerState()
            prof = cProfile.Profile() if args.cprofile and r == 1 else None
            if prof:
                prof.enable()
            cpu = time.process_time()
            loop.run_until_complete(asyncio.gather(*(
                _connection(protocol, config, state, per) for _ in range(args.clients))))
            cpu = time.process_time() - cpu
            if prof:
                prof.disable()
                print(f"--- {name}")
                pstats.Stats(prof).sort_stats("tottime").print_stats(args.cprofile)
                continue
            if r:
                figures[name].append(cpu / (per * args.clients) * 1e6)
    for name, values in figures.items():
        print(f"{name:26s} median {statistics.median(values):5.1f} µs CPU per request "
              f"(min {min(values):.1f}, max {max(values):.1f}; {len(values)} rounds of "
              f"{per * args.clients}, {args.clients} connections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
