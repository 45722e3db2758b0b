"""The services' HTTP protocol (`http_server.OneWriteHttpTools`, issue 12 wave 16) writes a
small answer to the socket once — status line, headers and body together — and a client
gets exactly the bytes uvicorn's own httptools protocol sends: small answers one after
another on a kept-alive connection, a streamed answer, HEAD, errors and `connection:
close`."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from microcred_shared.http_server import OneWriteHttpTools


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/boom":
        raise RuntimeError("a bug")
    answer = b'{"accepted":"%d bytes"}' % len(body)
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


REQUESTS = [
    b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
    b"content-length: 11\r\n\r\n{\"a\": \"bc\"}",
    b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n",
    b"HEAD /v1/x HTTP/1.1\r\nhost: t\r\n\r\n",
    b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
]


async def _exchange(protocol: type[asyncio.Protocol], requests: list[bytes] = REQUESTS,
                    ) -> bytes:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=protocol, loop="none",
                            log_level="critical", lifespan="off")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = b""
        for request in requests:
            writer.write(request)
            await writer.drain()
            await asyncio.sleep(0.2)  # answered by then (a guard, not a measurement)
        got = await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
        return re.sub(rb"date: [^\r]*\r\n", b"", got)
    finally:
        await server.shutdown()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What the server's sockets are handed, write by write (asyncio's own transport)."""
    from asyncio import selector_events

    seen: list[bytes] = []
    real = selector_events._SelectorSocketTransport.write

    def write(self: Any, data: Any) -> None:
        if isinstance(self._protocol, HttpToolsProtocol):  # the server's side
            seen.append(bytes(data))
        real(self, data)

    monkeypatch.setattr(selector_events._SelectorSocketTransport, "write", write)
    return seen


async def test_answers_are_the_same_bytes_and_a_small_one_leaves_in_one_write(
        writes: list[bytes]) -> None:
    expected = await _exchange(HttpToolsProtocol)
    assert writes[0].startswith(b"HTTP/1.1 202") and writes[1] == b'{"accepted":"11 bytes"}'
    writes.clear()
    got = await _exchange(OneWriteHttpTools)
    assert got == expected
    assert got.count(b"HTTP/1.1 202") == 3 and b"4\r\none,\r\n" in got
    # the first answer (202, headers and body) in one write; the streamed one in parts
    first = writes[0]
    assert first.startswith(b"HTTP/1.1 202") and first.endswith(b'{"accepted":"11 bytes"}')


async def test_a_failing_app_gets_the_same_server_error() -> None:
    boom = [b"GET /boom HTTP/1.1\r\nhost: t\r\n\r\n"]
    got = await _exchange(OneWriteHttpTools, boom)
    assert got == await _exchange(HttpToolsProtocol, boom)
    assert got.startswith(b"HTTP/1.1 500") and b"connection: close" in got
