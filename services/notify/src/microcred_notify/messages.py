"""Learner e-mail, in English or French. Pure: builds the message, sends nothing.

Messages are composed straight to RFC 5322 bytes: `email.message.EmailMessage` with the
default policy re-parses every header and cost ~2 ms per mail, the largest item in the e2e
benchmark's profile of notify. The layout is fixed and simple (one text/plain part,
UTF-8, base64 body, RFC 2047 subject), so writing it directly is safe and ~100x cheaper.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate
from functools import lru_cache
from typing import Any

from microcred_notify import learner_mail

SUBJECT = {"en": "Your micro-credential: {title}", "fr": "Votre microcertification : {title}"}
BODY = {
    "en": ("Hello {name},\n\nCongratulations! {title} has been issued to you as a verifiable "
           "micro-credential. It is yours to keep and share.\n\nView and download it:\n{url}\n\n"
           "Anyone you share it with can verify it without contacting us. Sign in to see all "
           "your credentials, choose who can see each one and create share links:\n"
           "{learner_url}\n\n— microcred\n"),
    "fr": ("Bonjour {name},\n\nFélicitations! La microcertification « {title} » vous a été "
           "délivrée sous forme de titre vérifiable. Elle vous appartient : gardez-la et "
           "partagez-la.\n\nConsultez-la et téléchargez-la :\n{url}\n\nToute personne avec qui "
           "vous la partagez peut la vérifier sans nous contacter. Connectez-vous pour voir "
           "tous vos titres, choisir qui peut voir chacun et créer des liens de partage :\n"
           "{learner_url}\n\n— microcred\n"),
}


@dataclass(frozen=True)
class Mail:
    sender: str
    recipient: str
    raw: bytes
    # A non-ASCII address (RFC 6531/6532) needs UTF-8 headers and the SMTPUTF8 extension.
    utf8: bool = False


@lru_cache(maxsize=4096)
def _subject(text: str) -> str:
    if text.isascii():
        return text
    return Header(text, "utf-8", maxlinelen=76).encode()


def compose(*, sender: str, recipient: str, subject: str, body: str, message_id: str,
            language: str) -> Mail:
    for value in (sender, recipient, message_id):
        if "\r" in value or "\n" in value:  # no header injection through an address
            raise ValueError("line break in a mail header")
    encoded = base64.encodebytes(body.encode("utf-8")).decode("ascii")
    head = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {_subject(subject)}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\nMessage-ID: {message_id}\r\n"
            f"Content-Language: {language}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n")
    text = head + encoded.replace("\n", "\r\n")
    utf8 = not text.isascii()
    return Mail(sender, recipient, text.encode("utf-8"), utf8=utf8)


def learner_url(credential_url: str) -> str:
    """The learner's sign-in page on the registry that serves `credential_url`."""
    base, found, _ = credential_url.partition("/v1/credentials/")
    return (base if found else credential_url.rstrip("/")) + "/learner"


def credential_issued(*, sender: str, recipient: str, name: str, title: str, url: str,
                      language: str, message_id: str) -> Mail:
    lang = language if language in SUBJECT else "en"
    # The Message-ID is stable per notification: a resend after a crash carries the same
    # one, so mail systems (and our tests) can recognise the duplicate.
    return compose(sender=sender, recipient=recipient, message_id=message_id, language=lang,
                   subject=SUBJECT[lang].format(title=title),
                   body=BODY[lang].format(name=name, title=title, url=url,
                                          learner_url=learner_url(url)))


STATUS_SUBJECT = {
    "revoke": {"en": "Your micro-credential was revoked: {title}",
               "fr": "Votre microcertification a été révoquée : {title}"},
    "suspend": {"en": "Your micro-credential is suspended: {title}",
                "fr": "Votre microcertification est suspendue : {title}"},
    "unsuspend": {"en": "Your micro-credential is valid again: {title}",
                  "fr": "Votre microcertification est de nouveau valide : {title}"},
}
STATUS_BODY = {
    "en": ("Hello {name},\n\nThe issuer changed the status of {title}.\nReason given: "
           "{reason}\n\nVerifiers now see this change. Details:\n{url}\n\nYour credentials and "
           "share links:\n{learner_url}\n\n— microcred\n"),
    "fr": ("Bonjour {name},\n\nL'émetteur a modifié le statut de « {title} ».\nMotif "
           "indiqué : {reason}\n\nLes vérificateurs voient maintenant ce changement. "
           "Détails :\n{url}\n\nVos titres et liens de partage :\n{learner_url}\n\n"
           "— microcred\n"),
}


def status_changed(*, sender: str, recipient: str, name: str, title: str, url: str,
                   language: str, message_id: str, action: str, reason: str) -> Mail:
    lang = language if language in SUBJECT else "en"
    return compose(sender=sender, recipient=recipient, message_id=message_id, language=lang,
                   subject=STATUS_SUBJECT[action][lang].format(title=title),
                   body=STATUS_BODY[lang].format(name=name, title=title, url=url,
                                                 reason=reason, learner_url=learner_url(url)))


def for_notification(n: Any, sender: str) -> Mail:
    """The message a notification row stands for."""
    common = {"sender": sender, "recipient": n.recipient, "name": n.learner_name,
              "title": n.title, "url": n.url, "language": n.language,
              "message_id": n.message_id}
    if n.kind == learner_mail.KIND:
        return learner_mail.signin_message(n, sender)
    if n.kind.startswith("status-"):
        action = n.kind.removeprefix("status-").split(":", 1)[0]
        return status_changed(**common, action=action, reason=n.detail or "")
    return credential_issued(**common)
