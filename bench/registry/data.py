"""Realistic registry rows for the registry benchmark, fast enough to load ten million.

Every document is what issuance's own code path builds (microcred_issuance.issuing.credential
.build, signed by microcred_shared.vc.proofs.sign) for one of several providers and
definitions. Building and signing ten million of them would take hours, so each
(provider, definition) pair is built and signed once with sentinel values, dumped to JSON,
and each row replaces the sentinels with its own credential id, learner (name, hashed email
and salt), status index, dates and proof value (the same length as a real one). Rows picked
for verification (`signed_rows`) are built and signed for real, so the verification endpoint
checks a signature that holds. Row i always yields the same credential id, learner and
provider, so the benchmark can pick any row without keeping ten million ids in memory.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from microcred_issuance.issuing import credential
from microcred_issuance.status.domain import STATUS_LIST_SIZE, status_entries
from microcred_shared.catalog import Definition, Provider
from microcred_shared.contract.events import AssessmentDecided, KnownLearner, learner_key
from microcred_shared.vc import keys, proofs, statuslist

BASE = "https://registry.bench.example"
PROVIDERS = 20
DEFINITIONS_PER_PROVIDER = 5
CREDENTIALS_PER_LEARNER = 10
EPOCH = datetime(2022, 1, 1, tzinfo=UTC)
SPAN_S = 4 * 365 * 86400  # issued over four years
PUBLIC_SHARE = 10  # one credential in ten made public by its learner

_CID = "0badc0de-0000-4000-8000-0000deadbeef"
_NAME = "Zzlearnerzz Sentinelzz"
_SALT = "5e5e5e5e5e5e5e5e"
_DATE = "2099-09-09T09:09:09Z"
_STATUS_INDEX = 123_456_789  # list 941, offset 99,093: both unlikely anywhere else


def provider_id(p: int) -> str:
    return f"provider-{p:02d}"


def provider(p: int) -> Provider:
    pid = provider_id(p)
    return Provider.model_validate({
        "id": pid, "name": {"en": f"College {p:02d} of Applied Arts and Technology",
                            "fr": f"Collège {p:02d} d'arts appliqués et de technologie"},
        "kind": "college", "jurisdiction": "CA-ON", "url": f"https://{pid}.example.ca",
        "email": f"credentials@{pid}.example.ca",
        "quality_assurance": {"type": "provincial quality assurance review",
                              "body": "Ontario College Quality Assurance Service",
                              "status": "accredited"}})


@cache
def definition(p: int, d: int) -> Definition:
    title = ["Forklift Safety", "Applied Data Analysis", "Workplace First Aid",
             "Project Coordination", "Customer Service Excellence"][d % 5]
    return Definition.model_validate({
        "id": f"{provider_id(p)}-def-{d}", "provider_id": provider_id(p), "version": 1 + d % 2,
        "title": {"en": title, "fr": f"{title} (FR)"},
        "description": {"en": f"{title}: practical skills for the workplace.",
                        "fr": "Compétences pratiques pour le milieu de travail."},
        "learning_outcomes": [{"en": "Apply the procedures safely.",
                               "fr": "Appliquer les procédures en sécurité."},
                              {"en": "Explain the choices made.",
                               "fr": "Expliquer les choix faits."}],
        "assessment_method": {"en": "Observed practical test and written quiz."},
        "assessment_type": "practical demonstration",
        "pass_rule": {"kind": "score", "min_score": 70, "max_score": 100},
        "workload": {"hours": 8 + 4 * d, "ects": 0.5}, "credits": 0.5,
        "level": {"framework": "CA-ON-QF", "value": str(3 + d % 3)},
        "participation_form": ["online", "onsite", "blended"][d % 3],
        "alignments": [{"name": "operate safely",
                        "url": "http://data.europa.eu/esco/skill/example-operate-safely",
                        "framework": "ESCO"}],
        "cip_code": "30.7101", "noc_code": "21211", "language": "en",
        "validity_months": 60 if d % 2 else None,
        # Half the definitions may suspend (both status entries), half only revoke (ADR 8).
        "suspendable": d % 2 == 0})


def private_key(p: int) -> Any:
    return keys.private_key_from_seed(hashlib.sha256(f"bench-key-{p}".encode()).digest())


def issuer(p: int) -> str:
    return credential.issuer_id(BASE, provider_id(p))


def verification_method(p: int) -> str:
    return f"{issuer(p)}#key-1"


@dataclass(frozen=True)
class Row:
    """Where row i of the table comes from (everything but the document)."""

    i: int
    credential_id: uuid.UUID
    provider: int
    definition: int
    learner: int
    status_index: int
    issued_at: datetime


def credential_id(i: int) -> uuid.UUID:
    """Random-looking (like issuance's uuid4), but the same for row i on every run."""
    return uuid.UUID(bytes=hashlib.blake2b(i.to_bytes(8, "big"), digest_size=16).digest(),
                     version=4)


def learner_of(i: int) -> int:
    """Row i's learner. Rows are loaded in blocks of 100,000: a block's learners get ten
    credentials each, spread across the block (a learner's credentials are not neighbours
    on disk, as they are not in a registry filled over years)."""
    block, at = divmod(i, 100_000)
    per_block = 100_000 // CREDENTIALS_PER_LEARNER
    return block * per_block + at % per_block


def learner_email(learner: int) -> str:
    return f"learner{learner}@mail{learner % 97}.example.org"


def learner_key_of(learner: int) -> str:
    return learner_key(learner_email(learner))


def row(i: int) -> Row:
    h = hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8, person=b"rowmeta").digest()
    # Providers take turns; each numbers its own status bits densely (i // PROVIDERS), as
    # issuance allocates them.
    return Row(i, credential_id(i), i % PROVIDERS, h[1] % DEFINITIONS_PER_PROVIDER,
               learner_of(i), i // PROVIDERS,
               EPOCH + timedelta(seconds=int.from_bytes(h[2:6], "big") % SPAN_S))


def decision(r: Row, learner: KnownLearner) -> AssessmentDecided:
    d = definition(r.provider, r.definition)
    return AssessmentDecided(
        assessment_id=uuid.UUID(int=r.i + 1), provider_id=provider_id(r.provider),
        result_id=f"r-{r.i}", definition_id=d.id, definition_version=d.version,
        learner=learner, learner_key=learner_key(learner.email), achieved=True,
        reason="passed", score=70 + r.i % 31, assessed_at=r.issued_at, decided_at=r.issued_at)


def known_learner(learner: int, name: str | None = None) -> KnownLearner:
    given, family = (name or f"Learner{learner} Student").split(" ", 1)
    return KnownLearner(id=f"s{learner}", email=learner_email(learner), given_name=given,
                        family_name=family)


def build(r: Row, *, learner: KnownLearner | None = None, index: int | None = None,
          salt: str | None = None, when: datetime | None = None) -> dict[str, Any]:
    """The unsigned document issuance builds for row r."""
    person = learner or known_learner(r.learner)
    prov = provider(r.provider)
    return credential.build(
        decision=decision(r, person), definition=definition(r.provider, r.definition),
        provider=prov, profile=credential.issuer_profile(prov, BASE),
        credential_id=r.credential_id, issued_at=when or r.issued_at, base_url=BASE,
        status_index=r.status_index if index is None else index,
        salt=salt or signed_salt(r.i))


def signed_salt(i: int) -> str:
    """The identity salt of row i when it is signed for real (template rows have others)."""
    return hashlib.sha256(str(i).encode()).hexdigest()[:16]


def signed(r: Row) -> dict[str, Any]:
    """Row r's document, signed for real (for the verification endpoint)."""
    return proofs.sign(build(r), private_key(r.provider), verification_method(r.provider),
                       created=r.issued_at)


class Templates:
    """One signed JSON template per (provider, definition), with sentinels to replace."""

    def __init__(self) -> None:
        self.parts: dict[tuple[int, int], list[str]] = {}
        rng = random.Random(7)
        for p in range(PROVIDERS):
            for d in range(DEFINITIONS_PER_PROVIDER):
                r = Row(0, uuid.UUID(_CID), p, d, 0, _STATUS_INDEX,
                        datetime(2099, 9, 9, 9, 9, 9, tzinfo=UTC))
                doc = proofs.sign(build(r, learner=known_learner(0, _NAME), salt=_SALT,
                                        when=datetime(2099, 9, 9, 9, 9, 9, tzinfo=UTC)),
                                  private_key(p), verification_method(p),
                                  created=datetime(2099, 9, 9, 9, 9, 9, tzinfo=UTC))
                text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
                text = self._mark(text, doc, p, d)
                self.parts[p, d] = text.split("\x00")
        # Real-looking proof values (base58btc of 64 random bytes), reused across rows.
        self.proof_values = [keys.multibase_encode(rng.randbytes(64)) for _ in range(4096)]

    @staticmethod
    def _mark(text: str, doc: dict[str, Any], p: int, d: int) -> str:
        """Put a NUL at each place a row fills in, in one fixed order (see fill)."""
        hashed = credential.identity(learner_email(0), _SALT)["identityHash"]
        status = json.dumps(status_entries(BASE, provider_id(p), _STATUS_INDEX,
                                           suspendable=definition(p, d).suspendable),
                            ensure_ascii=False, separators=(",", ":"))
        proof = doc["proof"][0] if isinstance(doc["proof"], list) else doc["proof"]
        proof_value = proof["proofValue"]
        for old, new in ((_CID, "\x00cid\x00"), (_NAME, "\x00name\x00"),
                         (hashed, "\x00hash\x00"), (_SALT, "\x00salt\x00"),
                         (status, "\x00status\x00"), (proof_value, "\x00proof\x00"),
                         ("2099-09-09T09:09:09Z", "\x00date\x00"),
                         ("2104-09-09T09:09:09Z", "\x00until\x00")):
            if old not in text and old != "2104-09-09T09:09:09Z":
                raise AssertionError(f"sentinel {old!r} not in the template")
            text = text.replace(old, new)
        return text

    def fill(self, r: Row) -> str:
        parts = self.parts[r.provider, r.definition]
        salt = hashlib.blake2b(r.i.to_bytes(8, "big"), digest_size=8).hexdigest()
        email = learner_email(r.learner)
        date = r.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        until = credential._add_months(r.issued_at, 60).strftime("%Y-%m-%dT%H:%M:%SZ")
        values = {
            "cid": str(r.credential_id), "name": f"Learner{r.learner} Student",
            "hash": "sha256$" + hashlib.sha256((email + salt).encode()).hexdigest(),
            "salt": salt, "proof": self.proof_values[r.i % 4096], "date": date,
            "until": until,
            "status": json.dumps(status_entries(
                BASE, provider_id(r.provider), r.status_index,
                suspendable=definition(r.provider, r.definition).suspendable),
                separators=(",", ":")),
        }
        return "".join(values[part] if k % 2 else part for k, part in enumerate(parts))


def status_lists_needed(rows: int) -> int:
    """How many lists per provider and purpose hold the status bits of `rows` rows."""
    return (rows // PROVIDERS) // STATUS_LIST_SIZE + 1


def copy_lines(templates: Templates, start: int, end: int, skip: set[int]) -> Iterator[str]:
    """COPY text lines of credentials (and of credential_visibility, second stream) for
    rows [start, end), except `skip` (rows inserted already signed for real)."""
    for i in range(start, end):
        if i in skip:
            continue
        r = row(i)
        yield credentials_line(r, templates.fill(r))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def credentials_line(r: Row, document: str) -> str:
    d = definition(r.provider, r.definition)
    title = d.title.en
    return "\t".join((str(r.credential_id), str(uuid.UUID(int=r.i + 1)), provider_id(r.provider),
                      d.id, str(d.version), learner_key_of(r.learner), title,
                      _escape(document), "active", r.issued_at.isoformat(),
                      r.issued_at.isoformat())) + "\n"


CREDENTIAL_COLUMNS = ("credential_id", "assessment_id", "provider_id", "definition_id",
                      "definition_version", "learner_key", "title", "document", "status",
                      "issued_at", "registered_at")


def is_public(i: int) -> bool:
    return i % PUBLIC_SHARE == 3


def statuslist_bits() -> bytearray:
    return statuslist.new_list(STATUS_LIST_SIZE)
