"""Errors raised by the Verifiable Credentials library.

Every error names what was wrong in words a credential author can act on: the undefined
term, the offending string's path, the unsupported cryptosuite.
"""

from __future__ import annotations


class VcError(Exception):
    """Base class for every error raised by `microcred_shared.vc`."""


class ContextNotFoundError(VcError):
    """A JSON-LD context URL that is not vendored: we never fetch one at run time."""


class UndefinedTermError(VcError):
    """A property or type that no JSON-LD context defines.

    pyld would silently drop such a property (so it would not be signed), and the VC 2.0
    context's `@vocab` would map it to an issuer-dependent IRI; both hide data from the
    proof or from verifiers, so signing refuses them.
    """

    def __init__(self, term: str, where: str = "") -> None:
        self.term = term
        self.where = where
        super().__init__(f"undefined JSON-LD {where or 'term'} {term!r}: define it in a "
                         "context (e.g. https://w3id.org/microcred/v1) or remove it")


class UnsafeValueError(VcError):
    """A value that canonicalizers disagree on, so a signature over it would not verify
    everywhere (control characters, numbers JavaScript cannot represent exactly)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}")


class CanonicalizationError(VcError):
    """The document is not valid JSON-LD for canonicalization."""


class KeyFormatError(VcError):
    """A Multikey, multibase or did:key value that cannot be decoded."""
