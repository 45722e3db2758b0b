"""Canonical forms of a document: RDFC-1.0 N-Quads (reference path, pyld) and JCS.

This is the slow, obviously-correct path: pyld expansion with an offline loader, then
pyld's URDNA2015 (= RDFC-1.0). `fastcanon` must produce byte-identical output and falls
back here for anything it does not handle.

Three pitfalls are closed here, before any canonicalizer sees the document:
- pyld drops properties no context defines (so they would not be signed) and the VC 2.0
  `@vocab` maps undefined terms to issuer-dependent IRIs: both raise UndefinedTermError.
- pyld's N-Quads writer leaves control characters other than TAB/LF/CR raw where
  RDFC-1.0 (and the JavaScript stack) escapes them, so such strings are refused.
- numbers outside what JavaScript holds exactly serialize differently in each stack.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import rfc8785
from pyld import jsonld
from pyld.jsonld import _is_absolute_iri  # the exact test pyld's RDF conversion applies

from .contexts import document_loader
from .errors import (
    CanonicalizationError,
    ContextNotFoundError,
    UndefinedTermError,
    UnsafeValueError,
)

ISSUER_DEPENDENT = "https://www.w3.org/ns/credentials/issuer-dependent#"
# The characters RDFC-1.0 writes as \b, \f or \uXXXX but pyld writes raw, plus lone
# surrogates (not encodable as UTF-8 at all).
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_MAX_SAFE_INT = 2**53 - 1
# Characters RDFC-1.0 escapes inside IRIs but pyld does not: refuse them in IRIs.
_UNSAFE_IRI_CHARS = re.compile(r'[\x00-\x20<>"{}|^`\\]')


def is_absolute_iri(value: str) -> bool:
    return bool(_is_absolute_iri(value))


def double_is_portable(value: float) -> bool:
    """Whether pyld and jsonld.js write the same canonical xsd:double for `value`.

    Both print 16 significant digits, but on an exact tie (the binary value's decimal
    expansion has exactly 17 significant digits, the last a 5) Python rounds half to even
    and JavaScript's toExponential rounds up; jsonld.js also reads any number whose JS
    string has no '.' (1e-7) as an integer. Those numbers are refused.
    """
    if not math.isfinite(value) or abs(value) >= 1e21:
        return False
    if value.is_integer() or value == 0:
        return True
    if abs(value) < 1e-6:
        return False
    digits = Decimal(abs(value)).normalize().as_tuple().digits
    return not (len(digits) == 17 and digits[-1] == 5)


def unsafe_character(text: str) -> str | None:
    """Why `text` cannot be signed (a character canonicalizers escape differently), or None.
    The rule `check_values` applies; ingest checks with it too, before accepting a value
    that will be signed (issue 13)."""
    if (bad := _UNSAFE_CHARS.search(text)) is not None:
        return (f"character U+{ord(bad.group()):04X} is not allowed in signed strings "
                "(canonicalizers escape it differently)")
    return None


def check_values(value: Any, path: str = "$") -> None:
    """Refuse strings and numbers that canonicalizers would render differently."""
    if isinstance(value, str):
        if (problem := unsafe_character(value)) is not None:
            raise UnsafeValueError(path, problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_values(key, f"{path} (key)")
            check_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_values(item, f"{path}[{index}]")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise UnsafeValueError(path, "integer beyond 2^53-1 is not exact in JSON/JavaScript")
    elif isinstance(value, float):
        if not double_is_portable(value):
            raise UnsafeValueError(path, f"number {value!r} has no portable canonical form")
    else:
        raise UnsafeValueError(path, f"{type(value).__name__} is not a JSON value")


def _term_of(iri: str | None) -> str:
    if iri is None:
        return "(a property whose term is mapped to null)"
    return iri.removeprefix(ISSUER_DEPENDENT)


def _check_iri(iri: Any, what: str, allow_issuer_dependent: bool) -> None:
    if not isinstance(iri, str):
        return
    if iri.startswith(ISSUER_DEPENDENT) and not allow_issuer_dependent:
        raise UndefinedTermError(_term_of(iri), what)
    if not is_absolute_iri(iri):
        if what in ("property", "type"):
            raise UndefinedTermError(iri, what)
        raise CanonicalizationError(f"{what} {iri!r} is not an absolute IRI")
    if _UNSAFE_IRI_CHARS.search(iri) and not iri.startswith("_:"):
        raise UnsafeValueError(what, f"IRI {iri!r} contains a character not allowed in IRIs")


def check_expanded(node: Any, allow_issuer_dependent: bool) -> None:
    """Walk expanded JSON-LD; every property, type and @id must be an absolute IRI."""
    if isinstance(node, list):
        for item in node:
            check_expanded(item, allow_issuer_dependent)
        return
    if not isinstance(node, dict):
        return
    if "@value" in node:
        _check_iri(node.get("@type"), "datatype", allow_issuer_dependent)
        return
    for key, value in node.items():
        if key == "@id":
            _check_iri(value, "@id", allow_issuer_dependent)
        elif key == "@type":
            for t in value if isinstance(value, list) else [value]:
                _check_iri(t, "type", allow_issuer_dependent)
        elif not key.startswith("@"):
            _check_iri(key, "property", allow_issuer_dependent)
            check_expanded(value, allow_issuer_dependent)
        else:
            check_expanded(value, allow_issuer_dependent)


def _refuse_dropped(expanded_property: str | None) -> None:
    raise UndefinedTermError(_term_of(expanded_property), "property")


def unwrap(exc: Exception) -> Exception:
    """pyld wraps loader and handler errors; surface ours when it is in the chain."""
    seen: Exception | None = exc
    while seen is not None:
        if isinstance(seen, ContextNotFoundError | UndefinedTermError | UnsafeValueError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return CanonicalizationError(f"not valid JSON-LD: {describe(exc)}")


def describe(exc: Exception) -> str:
    """A pyld error in one line: its message and code, without the (often huge) details
    that its str() appends (whole context documents)."""
    if isinstance(exc, jsonld.JsonLdError):
        message = exc.args[0] if exc.args else type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, jsonld.JsonLdError) and cause is not exc:
            message = f"{message}: {describe(cause)}"
        return f"{message}" + (f" ({exc.code})" if exc.code else "")
    return f"{type(exc).__name__}: {exc}"


def expand(document: dict[str, Any], *, allow_issuer_dependent: bool = False) -> list[Any]:
    """pyld expansion, offline, refusing undefined terms."""
    processor = jsonld.JsonLdProcessor(on_property_dropped=_refuse_dropped)
    try:
        expanded: list[Any] = processor.expand(
            # base None: relative IRIs stay relative (and are refused below) instead of
            # being resolved against pyld's example.org default base.
            document, {"documentLoader": document_loader, "base": None})
    except jsonld.JsonLdError as exc:
        raise unwrap(exc) from exc
    check_expanded(expanded, allow_issuer_dependent)
    return expanded


def rdfc_reference(document: dict[str, Any], *, allow_issuer_dependent: bool = False) -> str:
    """RDFC-1.0 canonical N-Quads of `document`, by pyld (the reference path)."""
    check_values(document)
    expanded = expand(document, allow_issuer_dependent=allow_issuer_dependent)
    try:
        nquads: str = jsonld.JsonLdProcessor().normalize(
            expanded, {"algorithm": "URDNA2015", "format": "application/n-quads",
                       "documentLoader": document_loader})
    except jsonld.JsonLdError as exc:
        raise unwrap(exc) from exc
    return nquads


_LABEL = re.compile(r"_:c14n[0-9]+")


def _utf16_order_differs(lines: list[str]) -> bool:
    return sorted(lines) != sorted(lines, key=lambda line: line.encode("utf-16-be"))


def _has_astral(text: str) -> bool:
    """Whether `text` has a character beyond U+FFFF: UTF-16 needs two units for each of
    those only (encoding is C speed; a regex scan of a signed document is ~50 µs)."""
    return len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)


def check_javascript_sort_order(nquads: str) -> None:
    """Refuse canonical N-Quads that JavaScript canonicalizers would order differently.

    RDFC-1.0 sorts N-Quads in code point order; rdf-canonize (the JS reference stack)
    sorts with Array.sort(), i.e. by UTF-16 code units. The two disagree only where one
    line has a character beyond U+FFFF and another has U+E000..U+FFFF at the same place,
    so this costs nothing unless an astral character (e.g. an emoji) is present. Both the
    final sort and the first-degree blank-node hashes sort lines, so both are checked.
    """
    if nquads.isascii() or not _has_astral(nquads):
        return
    lines = [line + "\n" for line in nquads.split("\n") if line]  # not splitlines(): U+2028
    groups = [lines]
    for label in set(_LABEL.findall(nquads)):
        groups.append([_LABEL.sub(lambda m, me=label: "_:a" if m.group() == me else "_:z",  # type: ignore[misc]
                                  line)
                       for line in lines if label in line])
    if any(_utf16_order_differs(group) for group in groups):
        raise UnsafeValueError("$", "characters beyond U+FFFF (e.g. emoji) next to characters "
                               "in U+E000..U+FFFF sort differently in JavaScript "
                               "canonicalizers; the proof would not verify there")


def jcs(document: Any) -> bytes:
    """RFC 8785 canonical JSON."""
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"cannot JCS-canonicalize: {exc}") from exc
