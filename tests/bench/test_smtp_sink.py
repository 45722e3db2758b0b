"""The e2e benchmark's lean SMTP sink takes what notify's real SMTP client sends, as a relay
would: pipelined envelopes staged behind the previous content, an empty content, lines
that start with a dot, an internationalised address; it times each accepted mail by its
recipient. If it misread one of these, the benchmark would count mails wrongly."""

from __future__ import annotations

from microcred_devstack import free_port
from microcred_notify.learner_mail.domain import Mail
from microcred_notify.learner_mail.smtp import SmtpPool


async def test_the_lean_sink_accepts_what_notifys_client_sends_and_times_each_recipient(
        bench_e2e):
    sink = bench_e2e("run").LeanSmtp(free_port()).start()
    pool = SmtpPool("127.0.0.1", sink.port, 2)
    body = b"Subject: hi\r\n\r\nline one\r\n.starts with a dot\r\n..two dots\r\nend\r\n"
    mails = [Mail("noreply@microcred.example", f"Learner{i}@Learners.example", body)
             for i in range(7)]
    mails.append(Mail("noreply@microcred.example", "benoît@learners.example", body, utf8=True))
    mails.append(Mail("noreply@microcred.example", "empty@learners.example", b""))
    try:
        for mail, then in zip(mails, [*mails[1:], None], strict=True):  # envelopes staged
            await pool.send(mail, then)
    finally:
        await pool.close()
        sink.stop()
    assert sink.messages == len(mails)
    assert sorted(sink.received) == sorted(m.recipient.lower() for m in mails)
    times = [sink.received[m.recipient.lower()] for m in mails]
    assert times == sorted(times)  # each mail accepted when its content ended, in order
