"""A small pool of SMTP connections: one TCP session carries many messages.

The client is ours (plain SMTP on asyncio streams, RFC 5321) because it pipelines (RFC
2920): where the server offers PIPELINING, a message's MAIL, RCPT and DATA go out in one
write and its content in a second, instead of four request/reply turns. A caller that
knows its next mail hands it along (`send(mail, then=next)`): that mail's envelope goes out
in the same write as this one's content (RFC 2920 3.1: message content may open a group),
so a mail costs one write. Still one message at a time per connection: a message is
delivered only when the server has its content's final dot, and the next content goes out
only in the next `send`, after the caller recorded this one. The at-most-one-unrecorded-mail-
per-connection window of ADR 4 is unchanged. A staged envelope that will not be followed
(the round stops) is dropped with its session (`release`): the server discards a
transaction whose content never came.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket

from microcred_notify.learner_mail.domain import Mail

_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


class SmtpError(Exception):
    """The server refused a command (its reply is the message), or spoke no SMTP."""

    def __init__(self, command: str, code: int, text: str) -> None:
        super().__init__(f"{command}: {code} {text}")
        self.code = code


@functools.cache
def _local_name() -> str:
    """This host's name for EHLO, looked up once (getfqdn may ask the resolver)."""
    return socket.getfqdn() or "localhost"


def _check_address(address: str) -> str:
    if any(c in address for c in "\r\n<>"):
        raise ValueError("an SMTP address may not contain a line break or angle bracket")
    return address


def _envelope(mail: Mail) -> tuple[str, str, str]:
    options = " SMTPUTF8" if mail.utf8 else ""
    return (f"MAIL FROM:<{_check_address(mail.sender)}>{options}\r\n",
            f"RCPT TO:<{_check_address(mail.recipient)}>\r\n", "DATA\r\n")


def content(raw: bytes) -> bytes:
    """The DATA content: CRLF line ends, leading dots doubled, ended by CRLF '.' CRLF.
    A message already in that form (what `domain.compose` writes) is taken as it is: the
    rewrites cost ~9 µs a mail for nothing (issue 12)."""
    crlf = raw.count(b"\r\n")
    if crlf == raw.count(b"\n") and crlf == raw.count(b"\r"):
        data = raw  # no bare CR or LF
    else:
        data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class SmtpConnection:
    """One SMTP session (no TLS, no authentication: a relay on the local network)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader, self._writer, self._timeout = reader, writer, timeout
        self.extensions: set[str] = set()
        self.broken = False
        # The reply deadline of the `send` in progress, moved on before each reply.
        self._deadline: asyncio.Timeout | None = None
        # A mail whose envelope went out with the previous content, replies not yet read.
        self.staged: Mail | None = None

    @classmethod
    async def open(cls, host: str, port: int, reply_timeout: float = 10.0) -> SmtpConnection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                reply_timeout)
        conn = cls(reader, writer, reply_timeout)
        try:
            await conn._expect("greeting", 220)
            conn._write(f"EHLO {_local_name()}\r\n".encode())
            code, text = await conn._reply()
            if code != 250:
                conn._write(f"HELO {_local_name()}\r\n".encode())
                await conn._expect("HELO", 250)
            else:
                conn.extensions = {line.split(" ", 1)[0].upper()
                                   for line in text.split("\n")[1:] if line}
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def is_connected(self) -> bool:
        return not self.broken and not self._writer.is_closing()

    def _write(self, data: bytes) -> None:
        self._writer.write(data)

    async def _reply(self) -> tuple[int, str]:
        """One reply, multi-line ones joined with newlines."""
        lines: list[str] = []
        while True:
            try:
                if self._deadline is None:
                    line = await asyncio.wait_for(self._reader.readline(), self._timeout)
                else:
                    # Each reply line within `timeout` of asking for it, as with wait_for,
                    # which wrapped every read in a task of its own: four tasks per mail
                    # (issue 12). The send's one deadline is moved on instead.
                    self._deadline.reschedule(asyncio.get_running_loop().time()
                                              + self._timeout)
                    line = await self._reader.readline()
            except BaseException:
                self.broken = True
                raise
            if not line.endswith(b"\n"):
                self.broken = True
                raise ConnectionError("the SMTP server closed the connection")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) < 3 or not text[:3].isdigit():
                self.broken = True
                raise SmtpError("reply", 0, f"not an SMTP reply: {text[:80]!r}")
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), "\n".join(lines)

    async def _expect(self, command: str, *codes: int) -> int:
        code, text = await self._reply()
        if code not in codes:
            raise SmtpError(command, code, text)
        return code

    async def send(self, mail: Mail, then: Mail | None = None) -> None:
        """Delivers one message, or raises (the server's refusal, or a broken session).
        With `then` (and PIPELINING), that mail's envelope follows this one's content in
        the same write; `then` is delivered only by the next `send(then)` on this session."""
        envelope = _envelope(mail)
        # A composed mail is sent as it is, ended by the final dot; other text is made fit.
        body = mail.raw + b".\r\n" if mail.smtp_ready else content(mail.raw)
        try:
            async with asyncio.timeout(None) as self._deadline:
                await self._deliver(mail, then, envelope, body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            self.broken = True
            raise
        finally:
            self._deadline = None

    async def _deliver(self, mail: Mail, then: Mail | None, envelope: tuple[str, str, str],
                       body: bytes) -> None:
        if self.staged is not None:
            if self.staged is not mail:
                raise RuntimeError("another mail's envelope is staged on this session")
            self.staged = None
            # Sent with the previous content: its three replies are read now.
            replies = [await self._reply() for _ in envelope]
        elif self.pipelining:
            self._write("".join(envelope).encode())
            # All three replies are read whatever they say (the server answers each).
            replies = [await self._reply() for _ in envelope]
        else:
            replies = []
            for command in envelope:
                self._write(command.encode())
                replies.append(await self._reply())
                if replies[-1][0] >= 400:
                    break
        failed = next(((cmd, r) for cmd, r in zip(envelope, replies, strict=False)
                       if r[0] not in (250, 251, 354)), None)
        if failed is None and replies[-1][0] == 354:
            if then is not None and self.pipelining:
                try:
                    body += "".join(_envelope(then)).encode()
                    self.staged = then
                except ValueError:
                    pass  # an address SMTP cannot carry: that mail fails on its own turn
            self._write(body)
            await self._expect("message", 250)
            return
        if len(replies) == len(envelope) and replies[-1][0] == 354:
            # DATA was accepted although a command before it was refused (RFC 2920,
            # 3.1): an empty message ends it, with no recipient nothing is delivered.
            self._write(b".\r\n")
            await self._reply()
        command, (code, text) = failed or (envelope[-1], replies[-1])
        await self._reset()
        raise SmtpError(command.split(":")[0].strip(), code, text)

    async def _reset(self) -> None:
        self._write(b"RSET\r\n")
        code, _ = await self._reply()
        if code != 250:
            self.broken = True

    async def quit(self) -> None:
        try:
            self._write(b"QUIT\r\n")
            await self._reply()
        finally:
            self.close()

    def close(self) -> None:
        self.broken = True
        with contextlib.suppress(Exception):
            self._writer.close()


class SmtpPool:
    """`size` sessions, opened lazily. A session whose last `send` staged the next mail's
    envelope is held for that mail: `send(that mail)` goes on it, `release(that mail)`
    drops it (and frees its place in the pool)."""

    def __init__(self, host: str, port: int, size: int, reply_timeout: float = 10.0) -> None:
        self._host, self._port, self._timeout = host, port, reply_timeout
        self._idle: asyncio.Queue[SmtpConnection | None] = asyncio.Queue()
        self._held: dict[int, tuple[Mail, SmtpConnection]] = {}
        for _ in range(size):
            self._idle.put_nowait(None)  # connected lazily

    def _take_held(self, mail: Mail) -> SmtpConnection | None:
        held = self._held.get(id(mail))
        if held is None or held[0] is not mail:
            return None
        del self._held[id(mail)]
        return held[1]

    async def send(self, mail: Mail, then: Mail | None = None) -> None:
        client = self._take_held(mail)
        if client is None:
            client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                client = await SmtpConnection.open(self._host, self._port, self._timeout)
            # A relay without SMTPUTF8 refuses such a mail: that row fails and is retried.
            await client.send(mail, then)
        except BaseException:
            if client is not None and not client.is_connected:
                client.close()
                client = None
            raise
        finally:
            if client is not None and client.staged is not None:
                self._held[id(client.staged)] = (client.staged, client)
            else:
                self._idle.put_nowait(client)

    def release(self, mail: Mail) -> None:
        """`mail` will not be sent now: its staged envelope's session is closed (a DATA the
        server accepted can only be abandoned so) and its place in the pool freed."""
        client = self._take_held(mail)
        if client is not None:
            client.close()
            self._idle.put_nowait(None)

    async def close(self) -> None:
        for mail, _ in list(self._held.values()):
            self.release(mail)
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except Exception:
                    client.close()
