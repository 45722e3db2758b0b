"""Hypothesis strategies for JSON-LD-ish credentials: what a careless, curious or hostile
VC-API caller can send. Contexts mix the URLs we hold, unknown URLs, nulls and inline
objects with keywords in odd places; bodies mix defined terms, keywords and random JSON.
Used to fuzz the issue and verify endpoints (no input may give a 5xx)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

V2 = "https://www.w3.org/ns/credentials/v2"
V1 = "https://www.w3.org/2018/credentials/v1"
OB = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
KNOWN = [V2, V1, OB, "https://w3id.org/security/data-integrity/v2",
         "https://www.w3.org/ns/credentials/status/v1", "https://w3id.org/microcred/v1",
         "https://www.w3.org/ns/credentials/undefined-terms/v2"]
UNKNOWN = ["https://example.org/ctx.jsonld", "http://localhost/ctx", "urn:x:y", "", "v2",
           "did:example:123", "https://www.w3.org/ns/credentials/v3"]
KEYWORDS = ["@id", "@type", "@value", "@language", "@list", "@set", "@graph", "@context",
            "@vocab", "@base", "@protected", "@container", "@reverse", "@index", "@nest",
            "@included", "@json", "@none", "@direction", "@import", "@propagate",
            "@version", "@prefix"]
TERMS = ["id", "type", "name", "description", "issuer", "credentialSubject", "validFrom",
         "validUntil", "issuanceDate", "expirationDate", "achievement", "credentialStatus",
         "evidence", "relatedResource", "digestSRI", "digestMultibase", "proof", "holder",
         "x", "unknownTerm", "schema:name", "_:b0", "http://ex.org/p"]

def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any],
           share: int = 8) -> st.SearchStrategy[Any]:
    """`usual` in `share` draws out of 10, `odd` otherwise (one_of would weigh them even)."""
    return st.integers(0, 9).flatmap(lambda n: usual if n < share else odd)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12),
                    st.sampled_from(KNOWN + UNKNOWN + KEYWORDS + TERMS +
                                    ["2026-01-01T00:00:00Z", "not-a-date",
                                     "sha384-abc", "uEiAx", "did:key:z6Mk"]))
keys = st.one_of(st.sampled_from(KEYWORDS + TERMS), st.text(max_size=6))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(keys, inner, max_size=4)), max_leaves=max_leaves)


term_definitions = st.one_of(
    st.none(), st.sampled_from(KNOWN + UNKNOWN + KEYWORDS + TERMS),
    st.dictionaries(st.sampled_from(["@id", "@type", "@container", "@context", "@protected",
                                     "@reverse", "@language", "@prefix", "@nest"]),
                    st.one_of(scalars, st.sampled_from(["@id", "@vocab", "@json", "@set",
                                                       "@list", "@graph", "@language"])),
                    max_size=3))
context_objects = st.dictionaries(
    st.one_of(st.sampled_from(["@vocab", "@base", "@protected", "@version", "@import",
                               "@propagate", "@language", "@direction", "@type"]),
              st.sampled_from(TERMS), st.text(max_size=5)),
    term_definitions, max_size=4)
context_items = mostly(
    st.one_of(st.sampled_from(KNOWN), context_objects),
    st.one_of(st.sampled_from(UNKNOWN), st.none(), st.integers(),
              st.lists(st.sampled_from(KNOWN), max_size=2)))
# Mostly well-begun contexts, so that most inputs reach the JSON-LD processor.
well_begun = st.builds(lambda head, rest: [head, *rest], st.sampled_from([V2, V2, V1]),
                       st.lists(context_items, max_size=3))


contexts = mostly(well_begun, st.one_of(st.lists(context_items, max_size=3), context_items))
types = st.one_of(
    st.just(["VerifiableCredential"]), st.just(["VerifiableCredential", "OpenBadgeCredential"]),
    st.lists(st.sampled_from(["VerifiableCredential", "OpenBadgeCredential", "@json", "@id",
                              "Unknown", "schema:Thing", ""]), max_size=3),
    scalars)
subjects = mostly(
    st.builds(lambda extra: {"id": "did:example:1", **extra},
              st.dictionaries(keys, json_values(6), max_size=3)),
    st.one_of(st.lists(st.dictionaries(keys, json_values(4), max_size=3), max_size=3),
              scalars), 7)


def credentials(issuer: str) -> st.SearchStrategy[dict[str, Any]]:
    """Credentials naming `issuer` (so they reach the signer) or something else."""
    issuers = mostly(st.sampled_from([issuer, {"id": issuer, "name": "x"}]),
                     st.one_of(st.dictionaries(keys, json_values(3), max_size=3), scalars))
    required = st.fixed_dictionaries({
        "@context": contexts, "type": mostly(st.just(["VerifiableCredential"]), types, 6),
        "issuer": issuers,
        "credentialSubject": subjects})
    optional = st.dictionaries(keys, json_values(6), max_size=2)
    return st.builds(lambda r, o: {**o, **r}, required, optional)
