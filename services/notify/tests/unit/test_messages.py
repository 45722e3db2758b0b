"""Learner mail is composed as raw bytes; what a mail client reads must be right."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.policy import default

from microcred_devstack import free_port
from microcred_notify.learner_mail import domain as messages
from microcred_notify.learner_mail.smtp import SmtpPool, content
from microcred_testkit.backbone import SmtpRecorder


def issued(recipient: str, **over: str) -> messages.Mail:
    args = {"sender": "credentials@microcred.local", "recipient": recipient,
            "name": "Chloé Gagnon", "title": "Premiers soins « en milieu de soins »",
            "url": "http://r.example/v1/credentials/1", "language": "fr",
            "message_id": "<n-1@microcred.local>"} | over
    return messages.credential_issued(**args)


def test_a_french_mail_reads_back_with_its_accents_link_and_stable_message_id():
    msg = message_from_bytes(issued("chloe@learners.example").raw, policy=default)
    assert msg["Subject"] == "Votre microcertification : Premiers soins « en milieu de soins »"
    assert msg["Message-ID"] == "<n-1@microcred.local>"
    assert msg["Content-Language"] == "fr"
    body = msg.get_content()
    assert "Bonjour Chloé Gagnon" in body and "http://r.example/v1/credentials/1" in body
    assert "http://r.example/learner" in body


def test_an_address_with_accents_is_sent_with_smtputf8_and_arrives():
    mail = issued("chloé.gagnon@learners.example")
    assert mail.utf8
    server = SmtpRecorder(free_port()).start()
    try:
        pool = SmtpPool("127.0.0.1", server.controller.port, 1)
        asyncio.run(_send_and_close(pool, mail))
        assert [str(m["To"]) for m in server.messages] == ["chloé.gagnon@learners.example"]
    finally:
        server.stop()


async def _send_and_close(pool: SmtpPool, mail: messages.Mail) -> None:
    await pool.send(mail)
    await pool.close()


def test_a_line_break_in_an_address_is_refused_rather_than_injected():
    import pytest

    with pytest.raises(ValueError, match="line break"):
        issued("a@b.example\r\nBcc: everyone@x.example")


def test_a_line_break_in_a_title_stays_in_the_subject():
    mail = issued("ada@learners.example", title="Safety\r\nBcc: everyone@x.example", language="en")
    msg = message_from_bytes(mail.raw, policy=default)
    assert msg["Bcc"] is None
    assert "everyone@x.example" in msg["Subject"]


def test_a_composed_mail_is_sent_as_it_is_and_other_text_is_made_fit_for_smtp():
    # A long accented subject is folded: with CRLF like every other line, so the client
    # sends the composed bytes unchanged.
    mail = issued("chloe@learners.example", title="Premiers soins « en milieu de soins » " * 4)
    assert content(mail.raw) == mail.raw + b".\r\n"
    assert mail.raw.count(b"\n") == mail.raw.count(b"\r\n") == mail.raw.count(b"\r")
    # Anything else: bare CR and LF become CRLF, a leading dot is doubled, the end is added.
    assert content(b".a\nb\r.c\r\nd") == b"..a\r\nb\r\n..c\r\nd\r\n.\r\n"
    assert content(b"x\r\n.y\r\n") == b"x\r\n..y\r\n.\r\n"


def _as_before(*, sender: str, recipient: str, subject: str, body: str, message_id: str,
               language: str, date: str) -> bytes:
    """The message as `compose` wrote it until wave 16: `base64.encodebytes`, then CRLF."""
    import base64

    encoded = base64.encodebytes(body.encode("utf-8")).decode("ascii")
    head = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\nMessage-ID: {message_id}\r\n"
            f"Content-Language: {language}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n")
    return (head + encoded.replace("\n", "\r\n")).encode("utf-8")


def test_a_composed_mail_is_byte_for_byte_what_it_was_and_sent_as_it_is(monkeypatch):
    """Issue 12, wave 16: the body is base64-encoded at once and cut into lines instead of
    57 bytes per call; a learner's mail client gets the same bytes, the client adds only
    the final dot."""
    monkeypatch.setattr(messages.time, "time", lambda: 1_796_000_000.25)
    for body in ("", "a", "é" * 28, "x" * 57, "x" * 58, "Bonjour Chloé,\n\n" * 120):
        mail = messages.compose(sender="credentials@microcred.local",
                                recipient="chloé@learners.example", subject="Objet",
                                body=body, message_id="<n-1@microcred.local>", language="fr")
        assert mail.raw == _as_before(
            sender="credentials@microcred.local", recipient="chloé@learners.example",
            subject="Objet", body=body, message_id="<n-1@microcred.local>", language="fr",
            date="Mon, 30 Nov 2026 00:53:20 GMT")
        assert mail.utf8 and mail.smtp_ready
        assert content(mail.raw) == mail.raw + b".\r\n"
