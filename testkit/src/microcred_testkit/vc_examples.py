"""An example Open Badges 3.0 micro-credential that uses every microcred extension term.

Used by the tests, the interop checks and the benchmark, and a reference for whoever
builds credentials: it shows where each Council Recommendation element goes.
Bilingual text: OB 3.0 has no language maps (its JSON Schema wants plain strings for
`name`/`description`), so the primary language stays in OB's own fields with
`achievement.inLanguage`, and the French text goes in `nameFr`/`descriptionFr`/
`narrativeFr` (microcred terms whose values are `@language: fr` literals). A full
French achievement definition can also be linked with OB's `related` (`inLanguage: fr`).
"""

from __future__ import annotations

from typing import Any

from microcred_shared.vc.contexts import MICROCRED_V1_URL, OB_V3_URL, VC_V2_URL

CONTEXT = [VC_V2_URL, OB_V3_URL, MICROCRED_V1_URL]


def example_achievement(achievement_id: str) -> dict[str, Any]:
    return {
        "id": achievement_id,
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": "Applied Data Analysis",
        "nameFr": "Analyse de données appliquée",
        "description": "Clean, analyse and present tabular data for workplace decisions.",
        "descriptionFr": "Nettoyer, analyser et présenter des données tabulaires.",
        "criteria": {
            "narrative": "Capstone project scored against a published rubric; pass mark 70%.",
            "narrativeFr": "Projet de synthèse évalué selon une grille publiée; seuil 70 %.",
        },
        "inLanguage": "en",
        "creditsAvailable": 1.5,
        "alignment": [
            {"type": ["Alignment"], "targetName": "analyse data",
             "targetUrl": "http://data.europa.eu/esco/skill/example-analyse-data",
             "targetFramework": "ESCO"},
        ],
        "level": {"framework": "CA-ON-QF", "value": "5"},
        "notionalWorkload": {"hours": 45, "ects": 1.5},
        "assessmentType": "capstone project",
        "assessmentMethod": "rubric-scored project, proctored online",
        "participationForm": "online",
        "qualityAssurance": {"type": ["InternalQualityAssurance"],
                             "body": "Lakeshore College Academic Council",
                             "status": "approved"},
        "jurisdiction": "CA-ON",
        "prerequisites": "Secondary-school mathematics",
        "identityVerification": "photo ID checked by the online proctor",
        "stackability": {"stackedInto": "https://issuers.example.ca/lakeshore-college/"
                                        "achievements/data-analytics-certificate"},
        "furtherInformation": "https://issuers.example.ca/lakeshore-college/programs/ada",
        "definitionVersion": "2026.1",
        "cipCode": "30.7101",
        "nocCode": "21211",
        "language": "en",
    }


def example_credential(*, issuer_id: str = "https://issuers.example.ca/lakeshore-college",
                       credential_id: str = "urn:uuid:6f1c1d4e-2b7a-4c55-9d1b-000000000001",
                       subject_id: str = "did:example:learner-0001",
                       valid_from: str = "2026-06-30T00:00:00Z",
                       valid_until: str | None = None,
                       credential_status: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An unsigned OpenBadgeCredential (microcred profile)."""
    credential: dict[str, Any] = {
        "@context": list(CONTEXT),
        "id": credential_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "Applied Data Analysis micro-credential",
        "issuer": {
            "id": issuer_id,
            "type": ["Profile"],
            "name": "Lakeshore College",
            "address": {"type": ["Address"], "addressCountryCode": "CA",
                        "addressRegion": "ON"},
        },
        "validFrom": valid_from,
        "credentialSubject": {
            "id": subject_id,
            "type": ["AchievementSubject"],
            "creditsEarned": 1.5,
            "result": [{"type": ["Result"], "value": "84"}],
            "achievement": example_achievement(f"{issuer_id}/achievements/applied-data-analysis"),
        },
    }
    if valid_until is not None:
        credential["validUntil"] = valid_until
    if credential_status:
        credential["credentialStatus"] = credential_status
    return credential


class ExampleHolder:
    """A wallet's key for tests: a did:key from a seed, answering DID authentication (the
    presentation a wallet signs for a verifier's challenge and domain)."""

    def __init__(self, seed: bytes = bytes.fromhex("5a" * 32)) -> None:
        from microcred_shared.vc import keys, proofs

        self._proofs = proofs
        self.key = keys.private_key_from_seed(seed)
        self.did = keys.did_key(self.key.public_key())
        self.method = keys.did_key_verification_method(self.key.public_key())

    def present(self, challenge: str, domain: str) -> dict[str, Any]:
        """DID authentication signed in Python (shared/vc)."""
        return self._proofs.sign({"@context": [VC_V2_URL], "type": ["VerifiablePresentation"],
                                  "holder": self.did}, self.key, self.method,
                                 proof_purpose="authentication", challenge=challenge,
                                 domain=domain)


class ExampleIssuer:
    """A whole issuer for tests, interop checks and benchmarks: a deterministic key, its
    controller document, one revocation and one suspension list, and a resolver that
    serves them (so verification runs without any network)."""

    def __init__(self, issuer_id: str = "https://issuers.example.ca/lakeshore-college",
                 seed: bytes = bytes(range(32)), key_id: str = "key-1") -> None:
        from datetime import UTC, datetime

        from microcred_shared.vc import controller, didweb, keys, proofs, statuslist

        self._proofs, self._statuslist = proofs, statuslist
        self.issuer_id = issuer_id
        self.private_key = keys.private_key_from_seed(seed)
        self.verification_method = controller.verification_method_id(issuer_id, key_id)
        issuer_keys = [controller.IssuerKey(key_id, self.private_key.public_key())]
        if issuer_id.startswith(didweb.PREFIX):  # its DID document, where did:web puts it
            self.home = didweb.document_url(issuer_id).removesuffix("/did.json")
            self.documents: dict[str, dict[str, Any]] = {
                f"{self.home}/did.json": controller.did_document(issuer_id, issuer_keys)}
        else:
            self.home = issuer_id
            self.documents = {issuer_id: controller.controller_document(
                issuer_id, issuer_keys, name="Lakeshore College")}
        self.lists = {p: statuslist.new_list() for p in statuslist.PURPOSES}
        self.valid_from = datetime(2026, 1, 1, tzinfo=UTC)

    def list_url(self, purpose: str) -> str:
        return f"{self.home}/status/{purpose}/1"

    def credential(self, index: int, *, suite: str = "eddsa-rdfc-2022",
                   **fields: Any) -> dict[str, Any]:
        status = [self._statuslist.status_entry(
            status_list_credential=self.list_url(p), index=index, purpose=p)  # type: ignore[arg-type]
            for p in self._statuslist.PURPOSES]
        doc = example_credential(issuer_id=self.issuer_id, credential_status=status,
                                 credential_id=f"urn:uuid:00000000-0000-4000-8000-{index:012d}",
                                 **fields)
        return self._proofs.sign(doc, self.private_key, self.verification_method,
                                 cryptosuite=suite, created=self.valid_from)

    def publish_lists(self, suite: str = "eddsa-rdfc-2022") -> None:
        """(Re)sign both status lists into `documents`, as the registry would serve them."""
        for purpose, bits in self.lists.items():
            unsigned = self._statuslist.status_list_credential(
                url=self.list_url(purpose), issuer=self.issuer_id,
                purpose=purpose,  # type: ignore[arg-type]
                encoded_list=self._statuslist.encode_list(bits), valid_from=self.valid_from,
                ttl_ms=300_000)
            self.documents[self.list_url(purpose)] = self._proofs.sign(
                unsigned, self.private_key, self.verification_method, cryptosuite=suite,
                created=self.valid_from)

    async def resolve(self, url: str) -> dict[str, Any]:
        try:
            return self.documents[url]
        except KeyError:
            raise LookupError(f"no document at {url}") from None
