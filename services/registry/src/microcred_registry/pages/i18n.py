"""English and French for the learner-facing pages: a small dict catalog per language (the
pages have a few dozen strings; gettext catalogs would add a build step for nothing), and
the language choice: `?lang=` first, then Accept-Language, then English."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from babel.dates import format_date

LANGUAGES = ("en", "fr")
LOCALES = {"en": "en_CA", "fr": "fr_CA"}

PROVINCES = {
    "CA-AB": ("Alberta", "Alberta"),
    "CA-BC": ("British Columbia", "Colombie-Britannique"),
    "CA-MB": ("Manitoba", "Manitoba"),
    "CA-NB": ("New Brunswick", "Nouveau-Brunswick"),
    "CA-NL": ("Newfoundland and Labrador", "Terre-Neuve-et-Labrador"),
    "CA-NS": ("Nova Scotia", "Nouvelle-Écosse"),
    "CA-NT": ("Northwest Territories", "Territoires du Nord-Ouest"),
    "CA-NU": ("Nunavut", "Nunavut"),
    "CA-ON": ("Ontario", "Ontario"),
    "CA-PE": ("Prince Edward Island", "Île-du-Prince-Édouard"),
    "CA-QC": ("Quebec", "Québec"),
    "CA-SK": ("Saskatchewan", "Saskatchewan"),
    "CA-YT": ("Yukon", "Yukon"),
}

_EN = {
    "site": "microcred credentials",
    "skip": "Skip to main content",
    "credential": "Micro-credential",
    "awarded_to": "Awarded to",
    "achievement": "Achievement",
    "description": "Description",
    "outcomes": "Learning outcomes",
    "skills": "Skills and frameworks",
    "awarding_body": "Awarding body",
    "province": "Province or territory",
    "trust_list": "Trust list",
    "registered": "Registered issuer",
    "registered.explain": "a provider in good standing on this network's list of "
                          "quality-assured providers, which wallets also read",
    "unregistered": "Not a registered issuer",
    "unregistered.explain": "this provider is not on this network's list of quality-assured "
                            "providers (suspended, or not onboarded here)",
    "credits": "Credits",
    "level": "Level",
    "workload": "Notional workload",
    "hours": "{n} hours",
    "ects": "{n} ECTS",
    "issued": "Issue date",
    "valid_until": "Valid until",
    "details": "Credential details",
    "verification": "Verification",
    "checked_at": "Checked live at {when} against the issuer's keys and status lists.",
    "reasons": "Reasons",
    "issuer_reason": "Reason given by the issuer:",
    "framework": "Framework",
    "check.proof": "Signature (proof)",
    "check.issuer_key": "Issuer's key",
    "check.validity_window": "Validity dates",
    "check.status": "Revocation and suspension",
    "check.revocation": "Revocation",
    "check.schema": "Open Badges 3.0 format",
    "check": "Check",
    "result": "Result",
    "passed": "passed",
    "failed": "failed",
    "unknown": "could not be established",
    "download": "Download the signed credential (JSON)",
    "switch": "Français",
    "switch_lang": "fr",
    "status.valid": "Valid",
    "status.revoked": "Revoked",
    "status.suspended": "Suspended",
    "status.expired": "Expired",
    "status.unknown": "Status unknown",
    "status.not-yet-valid": "Not yet valid",
    "status.invalid": "Invalid",
    "explain.valid": "This credential is authentic, unaltered and in good standing.",
    "explain.revoked": "The issuer has revoked this credential. It is no longer valid.",
    "explain.suspended": "The issuer has suspended this credential for now.",
    "explain.expired": "This credential has passed its validity date.",
    "explain.unknown": "The status of this credential could not be established right now.",
    "explain.not-yet-valid": "This credential is not valid yet.",
    "explain.invalid": "This credential failed verification: do not rely on it.",
    "preview": "{title}, awarded to {name} by {issuer} ({province})",
    "not_found.title": "Credential not available",
    "not_found.body": "There is no credential here, or its holder has not shared it.",
    "not_found.owner": "If this credential is yours, sign in to see it and choose who can "
                       "see it.",
    "link_gone.title": "This share link no longer works",
    "link_gone.body": "The link has expired or its holder has withdrawn it.",
    "signin.title": "Sign in to your credentials",
    "signin.intro": "Enter the e-mail address your credentials were sent to. We will e-mail "
                    "you a one-time sign-in link.",
    "signin.email": "E-mail address",
    "signin.send": "Send me a sign-in link",
    "signin.sent.title": "Check your e-mail",
    "signin.sent.body": "If we hold credentials for that address, a sign-in link is on its "
                        "way. It works once, within {minutes} minutes.",
    "signin.confirm.title": "Sign in",
    "signin.confirm.body": "Continue to sign in to your credentials.",
    "signin.confirm.button": "Sign in",
    "signin.bad.title": "This sign-in link does not work",
    "signin.bad.body": "It has expired, it was already used, or it is not a link we sent. "
                       "Ask for a new one.",
    "signin.again": "Ask for a new sign-in link",
    "mine.title": "My credentials",
    "mine.none": "You have no credentials yet.",
    "mine.export": "Export all my credentials (JSON)",
    "mine.visibility": "Who can see it",
    "mine.open": "Open page",
    "profile": "Public profile",
    "profile.title": "Credentials of {name}",
    "profile.none": "No public credentials yet.",
    "provider": "Issuer",
    "status": "Status",
    "vis.private": "Only me",
    "vis.link": "Anyone with a share link",
    "vis.employers": "Subscribed employers and share links",
    "vis.public": "Public",
    "save": "Save",
    "sign_out": "Sign out",
    "share.create": "Create a share link",
    "share.created": "New share link (copy it now; it is shown only once):",
    "qr.label": "QR code of {url}",
    "qr.download": "Download the QR code (SVG)",
    "owner.title": "Sharing (only you see this)",
    "owner.change": "Change who can see it",
    "owner.public": "QR code of the public page",
    "owner.not_public": "Make this credential public to get a QR code of its page.",
    "owner.links": "Active share links",
    "owner.no_links": "No active share link.",
    "owner.links_withdrawn": "While only you can see this credential, its share links do "
                             "not work.",
    "owner.links_once": "A share link and its QR code are shown once, when the link is made: "
                        "we keep only a fingerprint of it. Make a new link to get a QR code.",
    "owner.new_link": "Create a share link with a QR code",
    "owner.created": "Created",
    "owner.expires": "Expires",
    "owner.never": "never",
    "employers.title": "Shared directly with employers",
    "employers.none": "You have not shared this credential directly with any employer.",
    "employers.employer": "Employer",
    "employers.since": "Shared since",
    "employers.since_unknown": "not recorded",
    "employers.remove": "Stop sharing",
    "employers.remove_one": "Stop sharing with {employer}",
    "employers.removed": "{employer} can no longer see this credential.",
    "employers.added": "{employer} can now see this credential.",
    "employers.unavailable": "{employer} cannot be shared with now: it is not an approved "
                             "employer.",
    "employers.id": "Employer id",
    "employers.status.suspended": "suspended: receives nothing while suspended",
    "employers.status.pending": "not yet approved",
    "employers.status.unknown": "name not known yet",
    "employers.share": "Share directly with an employer",
    "employers.choose": "Employer",
    "employers.share_button": "Share",
    "employers.share_note": "The employer you choose can see this credential even while only "
                            "you can see it otherwise, until you stop sharing.",
    "owner.revoke": "Revoke",
    "owner.revoke_one": "Revoke the share link created {created}",
    "owner.link_revoked": "The share link was revoked: it no longer opens this credential.",
    "owner.link_already_revoked": "That share link was already revoked.",
    "actions.title": "Download and share",
    "actions.png": "Download the badge (PNG)",
    "actions.svg": "Download the badge (SVG)",
    "actions.baked": "The badge image carries your signed credential: Open Badges tools "
                     "read it from the image and verify it.",
    "actions.linkedin": "Add to LinkedIn profile",
    "oid4vci.action": "Add to an OpenID4VCI wallet",
    "oid4vci.title": "Add to your wallet",
    "oid4vci.scan": "Scan this code with your wallet app, or open the link on the device "
                    "that holds it. The wallet asks for a transaction code: we have just "
                    "e-mailed it to you.",
    "oid4vci.qr": "QR code of the credential offer",
    "oid4vci.link": "Open in a wallet app",
    "oid4vci.tx_sent": "The transaction code is in the e-mail we sent to the address this "
                       "credential was issued to; it is not shown here, so that a photo of "
                       "this screen is not enough to take the credential.",
    "oid4vci.expires": "The offer can be used once, until {time} (UTC).",
    # The Open Badges 3.0 API's consent and sign-in pages (ADR 30).
    "ob.consent.title": "Allow access to your credentials?",
    "ob.consent.asks": "{client} asks for access to your account.",
    "ob.consent.wants": "If you allow it, it may:",
    "ob.consent.back": "You will then go back to {host}. You can refuse; nothing is shared "
                       "until you allow it.",
    "ob.consent.approve": "Allow",
    "ob.consent.deny": "Refuse",
    "ob.scope.credential.readonly": "read your credentials",
    "ob.scope.credential.upsert": "add credentials to your collection here (each one is "
                                  "verified first)",
    "ob.scope.profile.readonly": "read your profile",
    "ob.scope.profile.update": "update your profile",
    "ob.scope.offline_access": "keep this access until you or it withdraws it",
    "ob.signin.asks": "{client} asks for access to your credentials. Sign in first.",
    "ob.signin.back": "Once you follow the link in that e-mail, in this browser, you come "
                      "back here to decide.",
    "ob.error.title": "This request cannot be completed",
    "ob.error.client": "The application that sent you here is not registered with us.",
    "ob.error.redirect": "The application asked to send you back to an address it did not "
                         "register with us.",
    "ob.error.repeated": "The request is malformed.",
    "ob.error.safe": "For your safety you were not sent back to it. Nothing was shared.",
    "wallet.title": "Add to a wallet",
    "wallet.explain": "Keep this credential in a wallet app on your phone, bound to a key "
                      "only your wallet holds. Each button makes a single-use link and QR "
                      "code.",
    "wallet.lcw": "Add to the Learner Credential Wallet",
    "lcw.title": "Add to the Learner Credential Wallet",
    "lcw.scan": "In the Learner Credential Wallet app, choose Add credential, then Scan QR "
                "code, and scan this code. On the phone that has the wallet, you can open "
                "the link instead.",
    "lcw.qr": "QR code that opens this credential in the Learner Credential Wallet",
    "lcw.link": "Open in the Learner Credential Wallet",
    "lcw.expires": "The link and code can be used once, until {time} (UTC).",
    "back.credential": "Back to the credential",
    "actions.linkedin_private": "LinkedIn shows a link to this credential's page: make it "
                                "public so that people who follow it can see it.",
    "actions.for": "{action}: {title}",
}

_FR = {
    "site": "Titres microcred",
    "skip": "Aller au contenu principal",
    "credential": "Microcertification",
    "awarded_to": "Décernée à",
    "achievement": "Réalisation",
    "description": "Description",
    "outcomes": "Résultats d'apprentissage",
    "skills": "Compétences et référentiels",
    "awarding_body": "Organisme émetteur",
    "province": "Province ou territoire",
    "trust_list": "Liste de confiance",
    "registered": "Émetteur enregistré",
    "registered.explain": "un fournisseur en règle sur la liste des fournisseurs à qualité "
                          "assurée de ce réseau, que lisent aussi les portefeuilles",
    "unregistered": "Émetteur non enregistré",
    "unregistered.explain": "ce fournisseur ne figure pas sur la liste des fournisseurs à "
                            "qualité assurée de ce réseau (suspendu, ou non inscrit ici)",
    "credits": "Crédits",
    "level": "Niveau",
    "workload": "Charge de travail théorique",
    "hours": "{n} heures",
    "ects": "{n} ECTS",
    "issued": "Date de délivrance",
    "valid_until": "Valide jusqu'au",
    "details": "Détails du titre",
    "verification": "Vérification",
    "checked_at": "Vérifiée en direct le {when} auprès des clés et des listes de statut de "
                  "l'émetteur.",
    "reasons": "Motifs",
    "issuer_reason": "Motif indiqué par l'émetteur :",
    "framework": "Référentiel",
    "check.proof": "Signature (preuve)",
    "check.issuer_key": "Clé de l'émetteur",
    "check.validity_window": "Dates de validité",
    "check.status": "Révocation et suspension",
    "check.revocation": "Révocation",
    "check.schema": "Format Open Badges 3.0",
    "check": "Contrôle",
    "result": "Résultat",
    "passed": "réussi",
    "failed": "échoué",
    "unknown": "impossible à établir",
    "download": "Télécharger le titre signé (JSON)",
    "switch": "English",
    "switch_lang": "en",
    "status.valid": "Valide",
    "status.revoked": "Révoquée",
    "status.suspended": "Suspendue",
    "status.expired": "Expirée",
    "status.unknown": "Statut inconnu",
    "status.not-yet-valid": "Pas encore valide",
    "status.invalid": "Invalide",
    "explain.valid": "Ce titre est authentique, intact et en règle.",
    "explain.revoked": "L'émetteur a révoqué ce titre. Il n'est plus valide.",
    "explain.suspended": "L'émetteur a suspendu ce titre pour le moment.",
    "explain.expired": "La date de validité de ce titre est dépassée.",
    "explain.unknown": "Le statut de ce titre ne peut pas être établi pour le moment.",
    "explain.not-yet-valid": "Ce titre n'est pas encore valide.",
    "explain.invalid": "Ce titre a échoué à la vérification : ne vous y fiez pas.",
    "preview": "{title}, décernée à {name} par {issuer} ({province})",
    "not_found.title": "Titre non disponible",
    "not_found.body": "Il n'y a pas de titre ici, ou son titulaire ne l'a pas partagé.",
    "not_found.owner": "Si ce titre est le vôtre, connectez-vous pour le voir et choisir qui "
                       "peut le voir.",
    "link_gone.title": "Ce lien de partage ne fonctionne plus",
    "link_gone.body": "Le lien a expiré ou son titulaire l'a retiré.",
    "signin.title": "Connexion à vos titres",
    "signin.intro": "Entrez l'adresse courriel à laquelle vos titres ont été envoyés. Nous "
                    "vous enverrons un lien de connexion à usage unique.",
    "signin.email": "Adresse courriel",
    "signin.send": "M'envoyer un lien de connexion",
    "signin.sent.title": "Consultez vos courriels",
    "signin.sent.body": "Si nous détenons des titres pour cette adresse, un lien de connexion "
                        "est en route. Il fonctionne une fois, pendant {minutes} minutes.",
    "signin.confirm.title": "Connexion",
    "signin.confirm.body": "Continuez pour vous connecter à vos titres.",
    "signin.confirm.button": "Me connecter",
    "signin.bad.title": "Ce lien de connexion ne fonctionne pas",
    "signin.bad.body": "Il a expiré, il a déjà servi, ou ce n'est pas un lien que nous avons "
                       "envoyé. Demandez-en un nouveau.",
    "signin.again": "Demander un nouveau lien de connexion",
    "mine.title": "Mes titres",
    "mine.none": "Vous n'avez pas encore de titre.",
    "mine.export": "Exporter tous mes titres (JSON)",
    "mine.visibility": "Qui peut le voir",
    "mine.open": "Ouvrir la page",
    "profile": "Profil public",
    "profile.title": "Titres de {name}",
    "profile.none": "Aucun titre public pour le moment.",
    "provider": "Émetteur",
    "status": "Statut",
    "vis.private": "Moi seulement",
    "vis.link": "Toute personne ayant un lien de partage",
    "vis.employers": "Employeurs abonnés et liens de partage",
    "vis.public": "Public",
    "save": "Enregistrer",
    "sign_out": "Se déconnecter",
    "share.create": "Créer un lien de partage",
    "share.created": "Nouveau lien de partage (copiez-le maintenant; il n'est affiché "
                     "qu'une fois) :",
    "qr.label": "Code QR de {url}",
    "qr.download": "Télécharger le code QR (SVG)",
    "owner.title": "Partage (vous seul voyez ceci)",
    "owner.change": "Changer qui peut le voir",
    "owner.public": "Code QR de la page publique",
    "owner.not_public": "Rendez ce titre public pour obtenir un code QR de sa page.",
    "owner.links": "Liens de partage actifs",
    "owner.no_links": "Aucun lien de partage actif.",
    "owner.links_withdrawn": "Tant que vous seul pouvez voir ce titre, ses liens de partage "
                             "ne fonctionnent pas.",
    "owner.links_once": "Un lien de partage et son code QR sont affichés une seule fois, à "
                        "la création du lien : nous n'en gardons qu'une empreinte. Créez un "
                        "nouveau lien pour obtenir un code QR.",
    "owner.new_link": "Créer un lien de partage avec un code QR",
    "owner.created": "Créé le",
    "owner.expires": "Expire le",
    "owner.never": "jamais",
    "employers.title": "Partagé directement avec des employeurs",
    "employers.none": "Vous n'avez partagé ce titre directement avec aucun employeur.",
    "employers.employer": "Employeur",
    "employers.since": "Partagé depuis le",
    "employers.since_unknown": "non consigné",
    "employers.remove": "Ne plus partager",
    "employers.remove_one": "Ne plus partager avec {employer}",
    "employers.removed": "{employer} ne peut plus voir ce titre.",
    "employers.added": "{employer} peut maintenant voir ce titre.",
    "employers.unavailable": "Impossible de partager avec {employer} pour l'instant : ce "
                             "n'est pas un employeur approuvé.",
    "employers.id": "Identifiant de l'employeur",
    "employers.status.suspended": "suspendu : ne reçoit rien tant qu'il est suspendu",
    "employers.status.pending": "pas encore approuvé",
    "employers.status.unknown": "nom pas encore connu",
    "employers.share": "Partager directement avec un employeur",
    "employers.choose": "Employeur",
    "employers.share_button": "Partager",
    "employers.share_note": "L'employeur choisi peut voir ce titre, même si vous seul pouvez "
                            "le voir par ailleurs, jusqu'à ce que vous cessiez le partage.",
    "owner.revoke": "Révoquer",
    "owner.revoke_one": "Révoquer le lien de partage créé le {created}",
    "owner.link_revoked": "Le lien de partage a été révoqué : il n'ouvre plus ce titre.",
    "owner.link_already_revoked": "Ce lien de partage était déjà révoqué.",
    "actions.title": "Télécharger et partager",
    "actions.png": "Télécharger le badge (PNG)",
    "actions.svg": "Télécharger le badge (SVG)",
    "actions.baked": "L'image du badge contient votre titre signé : les outils Open Badges "
                     "le lisent dans l'image et le vérifient.",
    "actions.linkedin": "Ajouter au profil LinkedIn",
    "oid4vci.action": "Ajouter à un portefeuille OpenID4VCI",
    "oid4vci.title": "Ajouter à votre portefeuille",
    "oid4vci.scan": "Balayez ce code avec l'application de votre portefeuille, ou ouvrez le "
                    "lien sur l'appareil qui le contient. Le portefeuille demande un code de "
                    "transaction : nous venons de vous l'envoyer par courriel.",
    "oid4vci.qr": "Code QR de l'offre de titre",
    "oid4vci.link": "Ouvrir dans une application de portefeuille",
    "oid4vci.tx_sent": "Le code de transaction est dans le courriel envoyé à l'adresse à "
                       "laquelle ce titre a été délivré; il n'est pas affiché ici, pour qu'une "
                       "photo de cet écran ne suffise pas à prendre le titre.",
    "oid4vci.expires": "L'offre ne sert qu'une fois, jusqu'à {time} (UTC).",
    "ob.consent.title": "Autoriser l'accès à vos titres?",
    "ob.consent.asks": "{client} demande l'accès à votre compte.",
    "ob.consent.wants": "Si vous l'autorisez, cette application pourra :",
    "ob.consent.back": "Vous retournerez ensuite à {host}. Vous pouvez refuser; rien n'est "
                       "partagé sans votre accord.",
    "ob.consent.approve": "Autoriser",
    "ob.consent.deny": "Refuser",
    "ob.scope.credential.readonly": "lire vos titres",
    "ob.scope.credential.upsert": "ajouter des titres à votre collection ici (chacun est "
                                  "vérifié d'abord)",
    "ob.scope.profile.readonly": "lire votre profil",
    "ob.scope.profile.update": "mettre à jour votre profil",
    "ob.scope.offline_access": "garder cet accès jusqu'à ce que vous ou elle y mettiez fin",
    "ob.signin.asks": "{client} demande l'accès à vos titres. Connectez-vous d'abord.",
    "ob.signin.back": "Une fois le lien de ce courriel suivi, dans ce navigateur, vous "
                      "reviendrez ici pour décider.",
    "ob.error.title": "Cette demande ne peut pas aboutir",
    "ob.error.client": "L'application qui vous a envoyé ici n'est pas inscrite chez nous.",
    "ob.error.redirect": "L'application a demandé à vous renvoyer vers une adresse qu'elle "
                         "n'a pas inscrite chez nous.",
    "ob.error.repeated": "La demande est mal formée.",
    "ob.error.safe": "Par sécurité, vous n'y avez pas été renvoyé. Rien n'a été partagé.",
    "wallet.title": "Ajouter à un portefeuille",
    "wallet.explain": "Gardez ce titre dans une application de portefeuille sur votre "
                      "téléphone, lié à une clé que seul votre portefeuille détient. Chaque "
                      "bouton crée un lien et un code QR à usage unique.",
    "wallet.lcw": "Ajouter au Learner Credential Wallet",
    "lcw.title": "Ajouter au Learner Credential Wallet",
    "lcw.scan": "Dans l'application Learner Credential Wallet, choisissez Ajouter un titre, "
                "puis Balayer un code QR, et balayez ce code. Sur le téléphone qui contient "
                "le portefeuille, vous pouvez plutôt ouvrir le lien.",
    "lcw.qr": "Code QR qui ouvre ce titre dans le Learner Credential Wallet",
    "lcw.link": "Ouvrir dans le Learner Credential Wallet",
    "lcw.expires": "Le lien et le code ne servent qu'une fois, jusqu'à {time} (UTC).",
    "back.credential": "Retour au titre",
    "actions.linkedin_private": "LinkedIn affiche un lien vers la page de ce titre : "
                                "rendez-le public pour que les personnes qui le suivent "
                                "puissent le voir.",
    "actions.for": "{action} : {title}",
}

CATALOGS = {"en": _EN, "fr": _FR}


def choose_language(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` wins; otherwise the best of Accept-Language (q-values honoured)."""
    if query_lang and query_lang[:2].lower() in LANGUAGES:
        return query_lang[:2].lower()
    best, best_q = "en", 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip()[:2].lower()
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def translator(lang: str):  # noqa: ANN201 - a plain callable for templates
    catalog = CATALOGS.get(lang, _EN)

    def t(key: str, **values: object) -> str:
        text = catalog.get(key) or _EN.get(key) or key
        return text.format(**values) if values else text

    return t


def province_name(code: str | None, lang: str) -> str:
    if not code:
        return ""
    names = PROVINCES.get(code)
    return names[1 if lang == "fr" else 0] if names else code


def long_date(moment: datetime | None, lang: str) -> str:
    # Babel formats the date part of a datetime as it is (no time zone conversion).
    return _long_date(moment.date(), lang) if moment else ""


@lru_cache(maxsize=8192)
def _long_date(day: date, lang: str) -> str:
    """Babel's long date, once per day and language (a page shows two)."""
    return format_date(day, format="long", locale=LOCALES.get(lang, "en_CA"))
