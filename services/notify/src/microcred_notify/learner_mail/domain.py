"""Learner e-mail, in English or French: what is owed and what each message says. Pure:
builds the message, sends nothing (no database, broker or SMTP import).

Messages are composed straight to RFC 5322 bytes: `email.message.EmailMessage` with the
default policy re-parses every header and cost ~2 ms per mail, the largest item in the e2e
benchmark's profile of notify. The layout is fixed and simple (one text/plain part,
UTF-8, base64 body, RFC 2047 subject), so writing it directly is safe and ~100x cheaper.
"""

from __future__ import annotations

import binascii
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.utils import formatdate
from functools import lru_cache
from typing import Any

ISSUED = "credential-issued"  # a notification's kind; status-<action>:<event id> for status mail
# A sign-in link, keyed by the request id in `credential_id` (the link rides in `url` only
# until it is sent).
SIGNIN = "learner-signin"
# An OpenID4VCI offer's transaction code: `wallet-tx-code:<offer id>`, keyed by the credential.
TX_CODE = "wallet-tx-code:"

SUBJECT = {"en": "Your micro-credential: {title}", "fr": "Votre microcertification : {title}"}
BODY = {
    "en": ("Hello {name},\n\nCongratulations! {title} has been issued to you as a verifiable "
           "micro-credential. It is yours to keep and share.\n\nView and download it:\n{url}\n\n"
           "Anyone you share it with can verify it without contacting us. Sign in to see all "
           "your credentials, choose who can see each one and create share links:\n"
           "{learner_url}\n{wallet}{linkedin}\n— microcred\n"),
    "fr": ("Bonjour {name},\n\nFélicitations! La microcertification « {title} » vous a été "
           "délivrée sous forme de titre vérifiable. Elle vous appartient : gardez-la et "
           "partagez-la.\n\nConsultez-la et téléchargez-la :\n{url}\n\nToute personne avec qui "
           "vous la partagez peut la vérifier sans nous contacter. Connectez-vous pour voir "
           "tous vos titres, choisir qui peut voir chacun et créer des liens de partage :\n"
           "{learner_url}\n{wallet}{linkedin}\n— microcred\n"),
}
WALLET = {
    "en": ("\nAdd it to your wallet app, bound to a key only your wallet holds. In the Learner "
           "Credential Wallet, choose Add credential, then Scan QR code, and scan the code "
           "at:\n{qr}\nor open this link on the phone that has the wallet:\n{link}\nThe link "
           "works once and for a limited time. After that, or for another wallet "
           "(OpenID4VCI), sign in and use \"Add to a wallet\" on the credential.\n"),
    "fr": ("\nAjoutez-la à l'application de votre portefeuille, liée à une clé que seul votre "
           "portefeuille détient. Dans le Learner Credential Wallet, choisissez Ajouter un "
           "titre, puis Balayer un code QR, et balayez le code à l'adresse :\n{qr}\nou "
           "ouvrez ce lien sur le téléphone qui contient le portefeuille :\n{link}\nLe lien "
           "ne sert qu'une fois, pendant un temps limité. Ensuite, ou pour un autre "
           "portefeuille (OpenID4VCI), connectez-vous et utilisez « Ajouter à un "
           "portefeuille » sur le titre.\n"),
}
LINKEDIN = {
    "en": ("\nAdd it to your LinkedIn profile (the link opens LinkedIn's form, filled in; "
           "make the credential public so that people who follow the link can see it):\n"
           "{link}\n"),
    "fr": ("\nAjoutez-la à votre profil LinkedIn (le lien ouvre le formulaire de LinkedIn, "
           "déjà rempli; rendez le titre public pour que les personnes qui suivent le lien "
           "puissent le voir) :\n{link}\n"),
}


@dataclass(frozen=True)
class Mail:
    sender: str
    recipient: str
    raw: bytes
    # A non-ASCII address (RFC 6531/6532) needs UTF-8 headers and the SMTPUTF8 extension.
    utf8: bool = False
    # `raw` is fit for SMTP's DATA as it is (CRLF line ends, no line starting with a dot,
    # ending with CRLF): what `compose` writes. The client then only adds the final dot.
    smtp_ready: bool = False


@lru_cache(maxsize=4096)
def _subject(text: str) -> str:
    if text.isascii() and "\r" not in text and "\n" not in text:
        return text
    # Encoded words (RFC 2047): a line break in a title cannot start a header of its own.
    # Folded with CRLF like every other line: the message is then sent as it is.
    return Header(text, "utf-8", maxlinelen=76).encode(linesep="\r\n")


@lru_cache(maxsize=2)
def _date(second: int) -> str:
    """The Date header's value, made once per second (every mail of a round shares it)."""
    return formatdate(second, usegmt=True)


def compose(*, sender: str, recipient: str, subject: str, body: str, message_id: str,
            language: str) -> Mail:
    for value in (sender, recipient, message_id):
        if "\r" in value or "\n" in value:  # no header injection through an address
            raise ValueError("line break in a mail header")
    head = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {_subject(subject)}\r\n"
            f"Date: {_date(int(time.time()))}\r\nMessage-ID: {message_id}\r\n"
            f"Content-Language: {language}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n")
    # The body as `base64.encodebytes` writes it (lines of 76 characters, each of 57 bytes
    # of the text), with CRLF: encoded at once and cut, not 57 bytes per call (issue 12).
    encoded = binascii.b2a_base64(body.encode("utf-8"), newline=False)
    lines = b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)])
    # Only the head can be non-ASCII (an address or a name); the body is base64. No line
    # starts with a dot (header names, folded headers' blanks, base64): fit for DATA.
    return Mail(sender, recipient, head.encode("utf-8") + lines + (b"\r\n" if lines else b""),
                utf8=not head.isascii(), smtp_ready=True)


def learner_url(credential_url: str, language: str = "en") -> str:
    """The learner's sign-in page on the registry that serves `credential_url`, in the
    mail's language."""
    base, found, _ = credential_url.partition("/v1/credentials/")
    return (base if found else credential_url.rstrip("/")) + "/learner" + _lang(language)


def _lang(language: str) -> str:
    """The query that opens a page in the mail's language (whatever the browser says)."""
    return "?lang=fr" if language == "fr" else ""


def credential_issued(*, sender: str, recipient: str, name: str, title: str, url: str,
                      language: str, message_id: str, linkedin: str | None = None,
                      wallet: str | None = None, wallet_qr: str | None = None) -> Mail:
    lang = language if language in SUBJECT else "en"
    linkedin_text = LINKEDIN[lang].format(link=linkedin) if linkedin else ""
    wallet_text = WALLET[lang].format(link=wallet, qr=wallet_qr) if wallet and wallet_qr \
        else ""
    # The Message-ID is stable per notification: a resend after a crash carries the same
    # one, so mail systems (and our tests) can recognise the duplicate.
    return compose(sender=sender, recipient=recipient, message_id=message_id, language=lang,
                   subject=SUBJECT[lang].format(title=title),
                   body=BODY[lang].format(name=name, title=title, url=url + _lang(lang),
                                          learner_url=learner_url(url, lang),
                                          wallet=wallet_text, linkedin=linkedin_text))


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
                   body=STATUS_BODY[lang].format(name=name, title=title, url=url + _lang(lang),
                                                 reason=reason,
                                                 learner_url=learner_url(url, lang)))


SIGNIN_SUBJECT = {"en": "Your sign-in link for microcred",
                  "fr": "Votre lien de connexion microcred"}
SIGNIN_BODY = {
    "en": ("Hello,\n\nSomeone (we hope you) asked to sign in to the micro-credentials held "
           "for this address. Open this link to sign in:\n{link}\n\nIt works once, within "
           "{minutes} minutes. If you did not ask for it, ignore this message: nothing "
           "happens without the link.\n\n— microcred\n"),
    "fr": ("Bonjour,\n\nQuelqu'un (vous, nous l'espérons) a demandé à se connecter aux "
           "microcertifications détenues pour cette adresse. Ouvrez ce lien pour vous "
           "connecter :\n{link}\n\nIl fonctionne une fois, pendant {minutes} minutes. Si "
           "vous n'avez rien demandé, ignorez ce message : rien ne se passe sans le lien."
           "\n\n— microcred\n"),
}


def signin_message(n: Any, sender: str) -> Mail:
    lang = n.language if n.language in SIGNIN_SUBJECT else "en"
    minutes = 15
    try:
        expires = datetime.fromisoformat(n.detail or "")
        minutes = max(1, round((expires - n.created_at).total_seconds() / 60))
    except (TypeError, ValueError):
        pass
    return compose(sender=sender, recipient=n.recipient, subject=SIGNIN_SUBJECT[lang],
                   body=SIGNIN_BODY[lang].format(link=n.url, minutes=minutes),
                   message_id=n.message_id, language=lang)


TX_SUBJECT = {"en": "Your wallet's transaction code: {title}",
              "fr": "Le code de transaction pour votre portefeuille : {title}"}
TX_BODY = {
    "en": ("Hello {name},\n\nYou asked to add {title} to a wallet app (OpenID4VCI). When your "
           "wallet asks for the transaction code, enter:\n\n    {code}\n\nIt works once, "
           "with the offer shown on your credential's page, until {expires} (UTC). If you "
           "did not ask for it, ignore this message: without this code nobody can take the "
           "credential into a wallet.\n\n— microcred\n"),
    "fr": ("Bonjour {name},\n\nVous avez demandé d'ajouter « {title} » à une application de "
           "portefeuille (OpenID4VCI). Quand votre portefeuille demande le code de "
           "transaction, entrez :\n\n    {code}\n\nIl ne sert qu'une fois, avec l'offre "
           "affichée sur la page de votre titre, jusqu'au {expires} (UTC). Si vous n'avez "
           "rien demandé, ignorez ce message : sans ce code, personne ne peut mettre le titre "
           "dans un portefeuille.\n\n— microcred\n"),
}


def tx_code_message(n: Any, sender: str) -> Mail:
    """The transaction code of an OpenID4VCI offer, apart from the offer (ADR 31)."""
    lang = n.language if n.language in TX_SUBJECT else "en"
    code, _, expires = (n.detail or "").partition(" ")
    if not code:
        raise ValueError("the transaction code was blanked before it was sent")
    try:
        when = datetime.fromisoformat(expires).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        when = expires
    return compose(sender=sender, recipient=n.recipient, message_id=n.message_id,
                   language=lang, subject=TX_SUBJECT[lang].format(title=n.title),
                   body=TX_BODY[lang].format(name=n.learner_name or "", title=n.title,
                                             code=code, expires=when))


def status_kind(action: str, event_id: str) -> str:
    """One status mail per status event: the kind carries the action and the event id."""
    return f"status-{action}:{event_id}"


def for_notification(n: Any, sender: str) -> Mail:
    """The message a notification row stands for."""
    common = {"sender": sender, "recipient": n.recipient, "name": n.learner_name,
              "title": n.title, "url": n.url, "language": n.language,
              "message_id": n.message_id}
    if n.kind == SIGNIN:
        return signin_message(n, sender)
    if n.kind.startswith(TX_CODE):
        return tx_code_message(n, sender)
    if n.kind.startswith("status-"):
        action = n.kind.removeprefix("status-").split(":", 1)[0]
        return status_changed(**common, action=action, reason=n.detail or "")
    return credential_issued(**common, linkedin=n.detail,
                             wallet=getattr(n, "wallet_url", None),
                             wallet_qr=getattr(n, "wallet_qr_url", None))


def backoff(attempts: int, base: float) -> timedelta:
    """The delay before the next try of a mail: `base` doubling per attempt, with jitter."""
    return timedelta(seconds=base * 2 ** (attempts - 1) * random.uniform(0.8, 1.2))
