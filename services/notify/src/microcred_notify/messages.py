"""Learner e-mail, in English or French. Pure: builds the message, sends nothing."""

from __future__ import annotations

from email.message import EmailMessage

SUBJECT = {"en": "Your micro-credential: {title}", "fr": "Votre microcertification : {title}"}
BODY = {
    "en": ("Hello {name},\n\nCongratulations! {title} has been issued to you as a verifiable "
           "micro-credential. It is yours to keep and share.\n\nView and download it:\n{url}\n\n"
           "Anyone you share it with can verify it without contacting us.\n\n— microcred\n"),
    "fr": ("Bonjour {name},\n\nFélicitations! La microcertification « {title} » vous a été "
           "délivrée sous forme de titre vérifiable. Elle vous appartient : gardez-la et "
           "partagez-la.\n\nConsultez-la et téléchargez-la :\n{url}\n\nToute personne avec qui "
           "vous la partagez peut la vérifier sans nous contacter.\n\n— microcred\n"),
}


def credential_issued(*, sender: str, recipient: str, name: str, title: str, url: str,
                      language: str, message_id: str) -> EmailMessage:
    lang = language if language in SUBJECT else "en"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = SUBJECT[lang].format(title=title)
    # Stable per notification: a resend after a crash carries the same Message-ID, so
    # mail systems (and our tests) can recognise the duplicate.
    msg["Message-ID"] = message_id
    msg["Content-Language"] = lang
    msg.set_content(BODY[lang].format(name=name, title=title, url=url))
    return msg
