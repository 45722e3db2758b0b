"""A small pool of SMTP connections: one TCP session carries many messages."""

from __future__ import annotations

import asyncio

import aiosmtplib

from microcred_notify.learner_mail.domain import Mail


class SmtpPool:
    def __init__(self, host: str, port: int, size: int) -> None:
        self._host, self._port = host, port
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)  # connected lazily

    async def send(self, mail: Mail) -> None:
        client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                client = aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=10,
                                         start_tls=False)
                await client.connect()
            # A relay without SMTPUTF8 refuses such a mail: that row fails and is retried.
            await client.sendmail(mail.sender, [mail.recipient], mail.raw,
                                  mail_options=["SMTPUTF8"] if mail.utf8 else None)
        except Exception:
            if client is not None:
                client.close()
            client = None
            raise
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except Exception:
                    client.close()
