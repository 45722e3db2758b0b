"""notify's SMTP client: pipelined where the server offers it (RFC 2920), one command at a
time where it does not, one session for many mails, and a refusal fails one mail only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from microcred_devstack import free_port
from microcred_notify.learner_mail.domain import Mail
from microcred_notify.learner_mail.smtp import SmtpError, SmtpPool
from microcred_testkit.backbone import SmtpRecorder


def mail(recipient: str, body: str = "Hello\r\n.a line starting with a dot\r\n") -> Mail:
    raw = (f"From: credentials@microcred.local\r\nTo: {recipient}\r\nSubject: hi\r\n"
           f"Message-ID: <{recipient}>\r\n\r\n{body}").encode()
    return Mail("credentials@microcred.local", recipient, raw)


class BatchingServer:
    """A pipelining server that answers the envelope only once it has all of it (MAIL,
    RCPT and DATA), as RFC 2920 lets a server do: a client that waits for MAIL's reply
    before sending RCPT never gets one. Counts connections, keeps what it accepted."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.accepted: list[tuple[str, bytes]] = []
        self.connections = 0
        self.refuse = refuse or set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 test ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-test\r\n250-PIPELINING\r\n250 HELP\r\n")
        while True:
            first = await reader.readline()
            if not first or first.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                writer.close()
                return
            if first.startswith(b"RSET"):
                writer.write(b"250 reset\r\n")
                continue
            rcpt, data = await reader.readline(), await reader.readline()
            assert first.startswith(b"MAIL FROM:") and rcpt.startswith(b"RCPT TO:")
            assert data == b"DATA\r\n"
            to = rcpt.decode().split("<", 1)[1].split(">", 1)[0]
            if to in self.refuse:
                writer.write(b"250 ok\r\n550 no such mailbox\r\n554 no valid recipients\r\n")
                continue
            writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
            content = b""
            while (line := await reader.readline()) != b".\r\n":
                if not line:  # the client left mid-DATA: the transaction is discarded
                    writer.close()
                    return
                content += line
            self.accepted.append((to, content))
            writer.write(b"250 queued\r\n")


async def with_server(server: BatchingServer,
                      body: Callable[[int], Awaitable[None]]) -> None:
    port = free_port()
    srv = await asyncio.start_server(server.serve, "127.0.0.1", port)
    try:
        await asyncio.wait_for(body(port), 10)
    finally:
        srv.close()


def test_a_server_offering_pipelining_gets_each_envelope_in_one_go_over_one_session():
    server = BatchingServer()

    async def body(port: int) -> None:
        pool = SmtpPool("127.0.0.1", port, 1, reply_timeout=2.0)
        for i in range(3):
            await pool.send(mail(f"l{i}@learners.example"))
        await pool.close()

    asyncio.run(with_server(server, body))
    assert [to for to, _ in server.accepted] == [f"l{i}@learners.example" for i in range(3)]
    assert server.connections == 1
    # dot-stuffed on the wire (the server sees the doubled dot, a reader one dot)
    assert b"\r\n..a line starting with a dot\r\n" in server.accepted[0][1]


def test_a_refused_recipient_fails_that_mail_only_and_the_session_carries_on():
    server = BatchingServer(refuse={"gone@learners.example"})

    async def body(port: int) -> None:
        pool = SmtpPool("127.0.0.1", port, 1, reply_timeout=2.0)
        with pytest.raises(SmtpError, match="550 no such mailbox"):
            await pool.send(mail("gone@learners.example"))
        await pool.send(mail("here@learners.example"))
        await pool.close()

    asyncio.run(with_server(server, body))
    assert [to for to, _ in server.accepted] == ["here@learners.example"]
    assert server.connections == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_real_smtp_server_receives_every_mail_intact(pipelining: bool):
    recorder = SmtpRecorder(free_port(), fail_first=1, pipelining=pipelining).start()

    async def body() -> None:
        pool = SmtpPool("127.0.0.1", recorder.controller.port, 2)
        with pytest.raises(SmtpError, match="451 try again later"):
            await pool.send(mail("first@learners.example"))
        await asyncio.gather(*(pool.send(mail(f"l{i}@learners.example")) for i in range(6)))
        await pool.close()

    try:
        asyncio.run(body())
        got = sorted(str(m["To"]) for m in recorder.messages)
        assert got == sorted(f"l{i}@learners.example" for i in range(6))
        assert all(m.get_content().splitlines() == ["Hello", ".a line starting with a dot"]
                   for m in recorder.messages)
    finally:
        recorder.stop()


def counting_writes(pool: SmtpPool) -> list[bytes]:
    """Every write the pool's sessions make, recorded as it goes out."""
    from microcred_notify.learner_mail import smtp

    writes: list[bytes] = []
    original = smtp.SmtpConnection._write

    def write(self: smtp.SmtpConnection, data: bytes) -> None:
        writes.append(data)
        original(self, data)

    pool._writes_patch = (smtp.SmtpConnection, original)  # type: ignore[attr-defined]
    smtp.SmtpConnection._write = write  # type: ignore[method-assign]
    return writes


def restore_writes(pool: SmtpPool) -> None:
    cls, original = pool._writes_patch  # type: ignore[attr-defined]
    cls._write = original


def test_the_next_envelope_rides_with_the_content_but_that_mail_waits_for_its_own_send():
    server = BatchingServer()
    after_first: list[str] = []

    async def body(port: int) -> None:
        pool = SmtpPool("127.0.0.1", port, 1, reply_timeout=2.0)
        writes = counting_writes(pool)
        try:
            mails = [mail(f"l{i}@learners.example") for i in range(3)]
            await pool.send(mails[0], then=mails[1])
            await asyncio.sleep(0.05)  # the server had time to accept whatever it got
            after_first.extend(to for to, _ in server.accepted)
            await pool.send(mails[1], then=mails[2])
            await pool.send(mails[2])
            mail_writes = [w for w in writes if not w.startswith((b"EHLO", b"QUIT"))]
            # one write per mail, and one for the first envelope
            assert len(mail_writes) == 4
            assert mail_writes[1].endswith(b"\r\n.\r\nMAIL FROM:<credentials@microcred.local>\r\n"
                                           b"RCPT TO:<l1@learners.example>\r\nDATA\r\n")
            await pool.close()
        finally:
            restore_writes(pool)

    asyncio.run(with_server(server, body))
    # ADR 4's window: the second mail's envelope was out, but not its content
    assert after_first == ["l0@learners.example"]
    assert [to for to, _ in server.accepted] == [f"l{i}@learners.example" for i in range(3)]
    assert server.connections == 1


def test_a_staged_mail_released_is_never_delivered_by_that_session():
    server = BatchingServer()

    async def body(port: int) -> None:
        pool = SmtpPool("127.0.0.1", port, 1, reply_timeout=2.0)
        first, second = mail("l0@learners.example"), mail("l1@learners.example")
        await pool.send(first, then=second)
        pool.release(second)  # the round stopped: its session goes, DATA unfinished
        await asyncio.sleep(0.05)
        assert [to for to, _ in server.accepted] == ["l0@learners.example"]
        await pool.send(second)  # a later round: a new session, delivered once
        await pool.close()

    asyncio.run(with_server(server, body))
    assert [to for to, _ in server.accepted] == ["l0@learners.example", "l1@learners.example"]
    assert server.connections == 2


def test_a_refused_staged_envelope_fails_that_mail_only():
    server = BatchingServer(refuse={"gone@learners.example"})

    async def body(port: int) -> None:
        pool = SmtpPool("127.0.0.1", port, 1, reply_timeout=2.0)
        first, gone, last = (mail("l0@learners.example"), mail("gone@learners.example"),
                             mail("l2@learners.example"))
        await pool.send(first, then=gone)
        with pytest.raises(SmtpError, match="550 no such mailbox"):
            await pool.send(gone, then=last)
        await pool.send(last)
        await pool.close()

    asyncio.run(with_server(server, body))
    assert [to for to, _ in server.accepted] == ["l0@learners.example", "l2@learners.example"]
    assert server.connections == 1


def test_a_real_smtp_server_takes_chained_mails_over_one_session():
    recorder = SmtpRecorder(free_port(), pipelining=True).start()

    async def body() -> None:
        pool = SmtpPool("127.0.0.1", recorder.controller.port, 1)
        mails = [mail(f"l{i}@learners.example") for i in range(6)]
        for m, then in zip(mails, [*mails[1:], None], strict=True):
            await pool.send(m, then)
        await pool.close()

    try:
        asyncio.run(body())
        assert [str(m["To"]) for m in recorder.messages] == [f"l{i}@learners.example"
                                                             for i in range(6)]
        assert all(m.get_content().splitlines() == ["Hello", ".a line starting with a dot"]
                   for m in recorder.messages)
    finally:
        recorder.stop()


class SlowServer(BatchingServer):
    """Sends each reply `delay` seconds after the one before; stays silent after the final
    dot of the mails to `silent` (a relay that hangs)."""

    def __init__(self, delay: float, silent: set[str]) -> None:
        super().__init__()
        self.delay, self.silent = delay, silent

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 test ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-test\r\n250-PIPELINING\r\n250 HELP\r\n")
        while (first := await reader.readline()) and not first.startswith(b"QUIT"):
            rcpt, _ = await reader.readline(), await reader.readline()  # RCPT, DATA
            to = rcpt.decode().split("<", 1)[1].split(">", 1)[0]
            for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"):
                await asyncio.sleep(self.delay)
                writer.write(reply)
            content = b""
            while (line := await reader.readline()) != b".\r\n":
                if not line:
                    return
                content += line
            if to in self.silent:
                continue  # never answers: only the client's reply timeout ends its wait
            await asyncio.sleep(self.delay)
            self.accepted.append((to, content))
            writer.write(b"250 queued\r\n")
        writer.close()


def test_each_reply_has_its_own_timeout_and_a_silent_relay_breaks_only_its_session():
    # Each reply comes 0.15 s after the one before, within the 0.4 s reply timeout, while
    # the whole mail takes longer than that: slow is not broken. A relay that never answers
    # the final dot fails that mail after the timeout, and the next mail gets a new session.
    server = SlowServer(0.15, silent={"hung@learners.example"})

    async def body(port: int) -> None:
        pool = SmtpPool("127.0.0.1", port, 1, reply_timeout=0.4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await pool.send(mail("slow@learners.example"))
        assert loop.time() - started > 0.4
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pool.send(mail("hung@learners.example"))
        assert 0.3 < loop.time() - started < 2.0
        await pool.send(mail("after@learners.example"))
        await pool.close()

    asyncio.run(with_server(server, body))
    assert [to for to, _ in server.accepted] == ["slow@learners.example",
                                                 "after@learners.example"]
    assert server.connections == 2
