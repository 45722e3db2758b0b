"""JSON-LD → RDF quads without pyld's per-call cost, for documents over vendored contexts.

Why: pyld spends ~6 ms per credential re-processing the same contexts and building the
expanded form, node map and RDF dataset as dicts. Here every context step is still done by
pyld itself (`_process_context`, `_expand_iri`), but memoized per active context, and what
a key means under an active context is compiled once into a `Plan`. The document is then
walked once, emitting N-Quads terms directly. The walk mirrors pyld's `_expand`,
`_expand_object`, `_expand_value` and `_object_to_rdf` step for step (type- and
property-scoped contexts, reverting non-propagated contexts, coercion, @list).

Anything outside that subset — embedded @context, keywords written out, @graph/@json/
language/index containers, reverse properties, undefined terms, relative or odd IRIs,
blank-node ids, unsafe strings or numbers — raises `Fallback`, and the caller takes the
reference path, which then yields the same bytes or the proper error. So the fast path
never has to get an error case right; a property test proves it byte-identical on the rest.

Terms: an IRI or literal is its rendered N-Quads string; a blank node is an int.
The walk itself is `fastcanon.Walker`; this module holds the memoized context side.
"""

from __future__ import annotations

import re
from typing import Any

from pyld import jsonld
from pyld.context_resolver import ContextResolver

from .canon import _UNSAFE_CHARS, _UNSAFE_IRI_CHARS, ISSUER_DEPENDENT, double_is_portable
from .contexts import canonical_url, document_loader, known_urls

Term = str | int
Quad = tuple[Term, str, Term]
Ctx = dict[str, Any]

XSD = "http://www.w3.org/2001/XMLSchema#"
XSD_STRING, XSD_DOUBLE = XSD + "string", XSD + "double"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDF_TYPE, RDF_FIRST, RDF_REST = f"<{RDF}type>", f"<{RDF}first>", f"<{RDF}rest>"
RDF_NIL = f"<{RDF}nil>"
_MEMO_STRINGS = 4096  # rendered strings kept per plan
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"'})
_LIST_CONTAINERS = frozenset({"@set", "@list"})
# pyld's own _is_absolute_iri pattern (note `+-.` is a range), compiled once.
_ABSOLUTE = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*|_):[^\s]*$")
_MAX_SAFE_INT = 2**53 - 1
ID, TYPE, PROPERTY = 0, 1, 2
_CACHE_LIMIT = 100_000
_TOPS_MAX = 256


class Fallback(Exception):
    """The document needs a JSON-LD feature (or an error report) the fast path leaves to pyld."""


def iri(value: Any) -> str:
    """Rendered IRI term; only IRIs that the reference path accepts unchanged."""
    if (not isinstance(value, str) or not _ABSOLUTE.match(value)
            or value.startswith(("_:", ISSUER_DEPENDENT))
            or _UNSAFE_IRI_CHARS.search(value) or _UNSAFE_CHARS.search(value)):
        raise Fallback(f"IRI {value!r}")
    return f"<{value}>"


def _suffix(datatype: str | None, default: str) -> str:
    datatype = datatype or default
    return "" if datatype == XSD_STRING else f"^^{iri(datatype)}"


class Plan:
    """What one key means under one active context, computed once."""

    __slots__ = ("kind", "predicate", "term_ctx", "is_list", "coerce", "str_suffix",
                 "bool_suffix", "double_suffix", "int_suffix", "int_as_double", "scoped",
                 "_strings")

    def __init__(self, contexts: Contexts, ctx: Ctx, key: str) -> None:
        if key.startswith("@"):
            raise Fallback(f"keyword {key!r} written out")
        expanded = contexts.vocab(ctx, key)
        self.kind = ID if expanded == "@id" else TYPE if expanded == "@type" else PROPERTY
        self._strings: dict[str, str] = {}
        if self.kind != PROPERTY:
            return
        if expanded is None or expanded.startswith("@"):
            raise Fallback(f"keyword or dropped key {key!r}")
        self.predicate = iri(expanded)
        entry = ctx["mappings"].get(key) or {}
        if entry.get("reverse") or entry.get("@type") == "@json" or "@nest" in entry:
            raise Fallback(f"{key!r} needs full JSON-LD")
        container = entry.get("@container") or []
        if not _LIST_CONTAINERS.issuperset(container):
            raise Fallback(f"container {container!r}")
        self.is_list = "@list" in container
        self.scoped = entry.get("@context")
        self.term_ctx = ctx
        if self.scoped is not None:
            self.term_ctx = contexts.process(ctx, self.scoped, override_protected=True)
            if self.term_ctx["mappings"].get(key) is not ctx["mappings"].get(key):
                raise Fallback(f"{key!r} redefined by its own scoped context")
        self._values(self.term_ctx, key)

    def _values(self, ctx: Ctx, key: str) -> None:
        """_expand_value + _object_to_rdf decisions for scalars under this key."""
        entry = ctx["mappings"].get(key) or {}
        type_ = entry.get("@type")
        self.coerce = type_ if type_ in ("@id", "@vocab") else None
        datatype = type_ if type_ not in (None, "@id", "@vocab", "@none") else None
        # pyld's get_context_value: the context default, overridden by the term's own.
        language, direction = ctx.get("@language"), ctx.get("@direction")
        if "@language" in entry:
            language = entry["@language"]
        if "@direction" in entry:
            direction = entry["@direction"]
        if direction is not None:
            raise Fallback("@direction")
        if datatype is None and language is not None:
            self.str_suffix = f"@{language}"
        else:
            self.str_suffix = _suffix(datatype, XSD_STRING)
        self.bool_suffix = _suffix(datatype, XSD + "boolean")
        self.double_suffix = _suffix(datatype, XSD_DOUBLE)
        self.int_suffix = _suffix(datatype, XSD + "integer")
        # pyld renders any number typed xsd:double in the double form, and converts
        # strings typed xsd:double to numbers first: leave that odd case to pyld.
        self.int_as_double = datatype == XSD_DOUBLE
        if self.int_as_double:
            self.str_suffix = ""

    def scalar(self, value: Any, contexts: Contexts) -> str:
        if isinstance(value, str):
            # A definition's texts (names, narratives, descriptions, URLs) recur in every
            # credential of it: their rendering is a pure function of (plan, value).
            if (term := self._strings.get(value)) is not None:
                return term
            if self.coerce == "@id":
                term = iri(contexts.doc_iri(self.term_ctx, value))
            elif self.coerce == "@vocab":
                term = iri(contexts.vocab(self.term_ctx, value))
            elif self.int_as_double or _UNSAFE_CHARS.search(value):
                raise Fallback("string needs the reference path")
            else:
                term = f'"{value.translate(_ESCAPES)}"{self.str_suffix}'
            if len(self._strings) >= _MEMO_STRINGS:  # per-credential values churn it: bounded
                self._strings.clear()
            self._strings[value] = term
            return term
        if isinstance(value, bool):
            return f'"{"true" if value else "false"}"{self.bool_suffix}'
        if isinstance(value, int) and abs(value) <= _MAX_SAFE_INT:
            if self.int_as_double:
                return f'"{jsonld._canonicalize_double(float(value))}"{self.double_suffix}'
            return f'"{value}"{self.int_suffix}'
        if isinstance(value, float) and double_is_portable(value):
            if value.is_integer() and not self.int_as_double:
                return f'"{int(value)}"{self.int_suffix}'
            return f'"{jsonld._canonicalize_double(value)}"{self.double_suffix}'
        raise Fallback(f"value {value!r}")


class Contexts:
    """pyld context processing and key plans, memoized. Active contexts are pyld's own
    dicts, kept alive by this cache, so their id() is a stable key."""

    def __init__(self) -> None:
        self._proc = jsonld.JsonLdProcessor()
        self._options: dict[str, Any] = {
            "documentLoader": document_loader, "base": None, "isFrame": False,
            "keepFreeFloatingNodes": False, "extractAllScripts": False,
            "processingMode": "json-ld-1.1",
            "contextResolver": ContextResolver({}, document_loader),
        }
        self._initial = self._proc._get_initial_context(self._options)
        self._processed: dict[tuple[Any, ...], tuple[Ctx, Any]] = {}
        self._vocab: dict[tuple[int, str], str | None] = {}
        self._plans: dict[tuple[int, str], Plan] = {}
        self._types: dict[tuple[int, str, tuple[str, ...]], tuple[Ctx, list[str]]] = {}
        # By a node's keys, in order: which of them alias @type, and each key's plan (a
        # credential's nodes have the same keys every time: two lookups per node instead
        # of two per key).
        self._type_keys: dict[tuple[int, tuple[str, ...]], list[str]] = {}
        self._layouts: dict[tuple[int, tuple[str, ...]], list[Plan | None]] = {}
        self._known = known_urls()
        self._tops: dict[tuple[str, ...], Ctx] = {}

    def top(self, spec: Any) -> Ctx:
        # Every document of a deployment names the same few lists of URLs: their active
        # context by the list itself (its URLs parsed and looked up once; issue 12).
        if isinstance(spec, list):
            try:
                return self._tops[tuple(spec)]
            except (KeyError, TypeError):  # TypeError: an inline context (a dict)
                pass
        ctx = self._top(spec)
        if isinstance(spec, list):
            if len(self._tops) >= _TOPS_MAX:  # documents may name any origin: bounded
                self._tops.clear()
            self._tops[tuple(spec)] = ctx
        return ctx

    def _top(self, spec: Any) -> Ctx:
        urls = (spec,) if isinstance(spec, str) else spec
        if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
            raise Fallback("top-level @context is not a list of vendored URLs")
        # A deployment's URL of our context is the vendored document: one cache entry for
        # all of them, so documents naming many origins cannot grow the cache.
        urls = [canonical_url(u) for u in urls]
        if not all(u in self._known for u in urls):
            raise Fallback("top-level @context is not a list of vendored URLs")
        return self.process(self._initial, list(urls), key=("top", *urls))

    def process(self, ctx: Ctx, local: Any, *, propagate: bool = True,
                override_protected: bool = False, key: tuple[Any, ...] | None = None) -> Ctx:
        cache_key = (id(ctx), key or id(local), propagate, override_protected)
        hit = self._processed.get(cache_key)
        if hit is None:
            result = self._proc._process_context(
                ctx, local, self._options, override_protected=override_protected,
                propagate=propagate)
            hit = self._processed[cache_key] = (result, (ctx, local))  # pin both alive
        return hit[0]

    def _bound(self) -> None:
        # Keys and types come from documents, so these caches could grow without end on
        # hostile input; they are cheap to rebuild. `_processed` is never cleared: it
        # pins the contexts whose id() the other caches use, and it is bounded by the
        # vendored contexts (documents cannot add contexts on the fast path).
        if len(self._vocab) + len(self._plans) + len(self._types) + len(self._type_keys) \
                + len(self._layouts) > _CACHE_LIMIT:
            self._vocab.clear()
            self._plans.clear()
            self._types.clear()
            self._type_keys.clear()
            self._layouts.clear()

    def vocab(self, ctx: Ctx, value: str) -> str | None:
        """A key or type value expanded as pyld does with vocab=True."""
        cache_key = (id(ctx), value)
        try:
            return self._vocab[cache_key]
        except KeyError:
            self._bound()
            expanded = self._proc._expand_iri(ctx, value, vocab=True, base=None)
            self._vocab[cache_key] = expanded
            return expanded

    def plan(self, ctx: Ctx, key: str) -> Plan:
        cache_key = (id(ctx), key)
        plan = self._plans.get(cache_key)
        if plan is None:
            self._bound()
            plan = self._plans[cache_key] = Plan(self, ctx, key)
        return plan

    def type_keys(self, ctx: Ctx, keys: tuple[str, ...]) -> list[str]:
        """The keys among `keys` that expand to @type (as `vocab` says, key by key)."""
        cache_key = (id(ctx), keys)
        hit = self._type_keys.get(cache_key)
        if hit is None:
            self._bound()
            hit = self._type_keys[cache_key] = [k for k in keys if self.vocab(ctx, k) == "@type"]
        return hit

    def layout(self, ctx: Ctx, keys: tuple[str, ...]) -> list[Plan | None]:
        """`plan(ctx, key)` for each of `keys` in order; None for "@context" (no plan)."""
        cache_key = (id(ctx), keys)
        hit = self._layouts.get(cache_key)
        if hit is None:
            self._bound()
            hit = [None if k == "@context" else self.plan(ctx, k) for k in keys]
            self._layouts[cache_key] = hit
        return hit

    def typed(self, ctx: Ctx, key: str, value: Any) -> tuple[Ctx, list[str]]:
        """(context with type-scoped contexts applied, rendered type IRIs) for one @type key."""
        types = tuple(value) if isinstance(value, list) else (value,)
        cache_key = (id(ctx), key, types)
        hit = self._types.get(cache_key)
        if hit is None:
            self._bound()
            if not all(isinstance(t, str) for t in types):
                raise Fallback("non-string type")
            rendered = [iri(self.vocab(ctx, t)) for t in types]
            scoped_ctx = ctx
            for t in sorted(types):
                scoped = (ctx["mappings"].get(t) or {}).get("@context")
                if scoped is not None and scoped is not False:
                    scoped_ctx = self.process(scoped_ctx, scoped, propagate=False)
            hit = self._types[cache_key] = (scoped_ctx, rendered)
        return hit

    def doc_iri(self, ctx: Ctx, value: str) -> str:
        """An @id value; absolute IRIs whose scheme is not a prefix term are kept as is."""
        colon = value.find(":")
        if colon > 0 and not value.startswith("_:"):
            mapping = ctx["mappings"].get(value[:colon])
            if not (mapping and mapping["_prefix"]) and _ABSOLUTE.match(value):
                return value
        expanded = self._proc._expand_iri(ctx, value, base=None)
        if not isinstance(expanded, str):
            raise Fallback(f"@id {value!r}")
        return expanded
