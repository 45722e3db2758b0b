"""A delivery worker is woken by the commit of the batch that owed it work, whatever other
subscriptions commit meanwhile (issue 12: a woken-too-early worker left the rows to its
half-second poll)."""

from __future__ import annotations

import base64
import os

from microcred_notify.main import build
from microcred_notify.settings import Settings
from microcred_shared.contract import topics


def _runtime():  # type: ignore[no-untyped-def]
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    _, rt = build(Settings(MICROCRED_NOTIFY_SECRET_KEY=key))  # not started: no broker, no db
    return rt


def test_mail_owed_by_one_batch_wakes_the_worker_when_that_batch_commits() -> None:
    rt = _runtime()
    wake = rt.mail.wake
    # A credential.status batch owes a status mail, inside its transaction...
    rt.mail.owed.owe(topics.CREDENTIAL_STATUS)
    # ...while the employer feed's visibility batch commits first (the consumer's
    # after-commit hook, as BatchConsumer calls it).
    rt._committed(topics.CREDENTIAL_VISIBILITY, False)
    assert not wake.is_set(), "woken before the rows it owes are committed"
    rt._committed(topics.CREDENTIAL_STATUS, False)
    assert wake.is_set(), "the commit that made the rows must wake the mail worker"
    assert rt.mail.handoff.claim_owed, "status mail is claimed: the wake must say so"
    wake.clear()  # the worker claims
    rt._committed(topics.CREDENTIAL_STATUS, False)  # a batch that owed nothing
    assert not wake.is_set()


def test_an_early_wake_does_not_spend_another_batchs_mark() -> None:
    """The old single mark: any commit took it; the worker woke, found nothing yet, and the
    owing batch's own commit then woke nobody."""
    rt = _runtime()
    wake = rt.mail.wake
    rt.mail.owed.owe(topics.CREDENTIAL_STATUS)
    rt.mail.owed.owe(topics.LEARNER_SIGNIN)
    rt._committed(topics.LEARNER_SIGNIN, False)
    assert wake.is_set()
    wake.clear()  # the worker claims: the sign-in row is there, the status ones not yet
    rt._committed(topics.CREDENTIAL_STATUS, False)
    assert wake.is_set()


def test_webhook_work_owed_wakes_only_the_webhook_worker() -> None:
    rt = _runtime()
    rt.employers.owed.owe(topics.CREDENTIAL_VISIBILITY)
    rt._committed(topics.CREDENTIAL_STATUS, False)
    assert not rt.employers.wake.is_set()
    rt._committed(topics.CREDENTIAL_VISIBILITY, False)
    assert rt.employers.wake.is_set() and not rt.mail.wake.is_set()


def test_notify_reads_credentials_issued_only_while_upgrading() -> None:
    """The employer feed takes documents from the visibility changes that show them
    (ADR 10): no credentials.issued consumer unless the upgrade setting asks for one."""
    def consumed(**setting: str) -> set[str]:
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        _, rt = build(Settings(MICROCRED_NOTIFY_SECRET_KEY=key, **setting))  # type: ignore[arg-type]
        return {sub[0] for sub in rt._subs}

    assert topics.CREDENTIALS_ISSUED not in consumed()
    assert topics.CREDENTIAL_VISIBILITY in consumed()
    assert topics.CREDENTIALS_ISSUED in consumed(MICROCRED_EMPLOYER_FEED_READS_ISSUED="true")
