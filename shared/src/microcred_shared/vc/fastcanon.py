"""The fast path: `Walker` (a document → quads, mirroring pyld's expansion over the
memoized contexts of `fastexpand`), RDFC-1.0 on those quads, and `rdfc_fast`.

RDFC-1.0 first hashes each blank node's first-degree quads (itself as `_:a`, any other
blank node as `_:z`); blank nodes whose hash is unique get canonical ids in hash order.
Only blank nodes that share a hash need the exponential N-degree step. Credentials are
trees whose blank nodes almost always differ in their own quads, so that common case is
done here in a few microseconds; any shared hash goes to pyoxigraph's full RDFC-1.0
(still far cheaper than pyld), and anything `fastexpand` does not cover goes to pyld.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import pyoxigraph

from . import canon
from .fastexpand import (
    ID,
    PROPERTY,
    RDF_FIRST,
    RDF_NIL,
    RDF_REST,
    RDF_TYPE,
    Contexts,
    Ctx,
    Fallback,
    Plan,
    Quad,
    Term,
    iri,
)


class Walker:
    """One document's walk; collects quads into a set (RDF datasets are sets)."""

    def __init__(self, contexts: Contexts) -> None:
        self.c = contexts
        self.quads: set[Quad] = set()
        self._next = 0

    def document(self, doc: dict[str, Any]) -> set[Quad]:
        self.node(self.c.top(doc.get("@context")), None, doc)
        return self.quads

    def _enter(self, ctx: Ctx, scoped: Any, element: dict[str, Any]) -> Ctx:
        """The context for a nested node: revert type-scoped, then apply property-scoped."""
        if "@context" in element:
            raise Fallback("embedded @context")
        if ctx.get("previousContext"):
            revert = True
            if len(element) <= 2:
                for key in sorted(element):
                    expanded = self.c.vocab(ctx, key)
                    if expanded == "@value":
                        raise Fallback("value object")
                    if expanded == "@id" and len(element) == 1:
                        revert = False
                        break
            if revert:
                ctx = ctx["previousContext"]
        if scoped is not None:
            ctx = self.c.process(ctx, scoped, override_protected=True)
        return ctx

    def node(self, ctx: Ctx, via: Plan | None, element: dict[str, Any]) -> Term:
        if via is not None:
            ctx = self._enter(ctx, via.scoped, element)
        c = self.c
        keys = tuple(element)
        type_keys = c.type_keys(ctx, keys)
        types: list[str] = []
        if len(type_keys) == 1:
            key = type_keys[0]
            scoped_ctx, types = c.typed(ctx, key, element[key])
        elif type_keys:
            raise Fallback("several keys alias @type")  # pyld's sorted merge; rare
        else:
            scoped_ctx = ctx
        subject: Term | None = None
        pending: list[tuple[Plan, Any]] = []
        for key, plan in zip(keys, c.layout(scoped_ctx, keys), strict=True):
            if plan is None:  # "@context"
                if via is None:
                    continue
                raise Fallback("embedded @context")
            value = element[key]
            if plan.kind == PROPERTY:
                if value is not None:  # pyld drops a null-valued property entirely
                    pending.append((plan, value))
            elif plan.kind == ID:
                if not isinstance(value, str):
                    raise Fallback("@id is not a string")
                subject = iri(c.doc_iri(scoped_ctx, value))
        if subject is None:
            self._next += 1
            subject = self._next
        add = self.quads.add
        for t in types:
            add((subject, RDF_TYPE, t))
        for plan, value in pending:
            objects = self.objects(plan, value)
            if plan.is_list:
                add((subject, plan.predicate, self.rdf_list(objects)))
            else:
                for obj in objects:
                    add((subject, plan.predicate, obj))
        return subject

    def objects(self, plan: Plan, value: Any) -> list[Term]:
        out: list[Term] = []
        for item in value if isinstance(value, list) else (value,):
            if item is None:
                continue
            if isinstance(item, dict):
                out.append(self.node(plan.term_ctx, plan, item))
            elif isinstance(item, list):
                raise Fallback("nested array")
            else:
                out.append(plan.scalar(item, self.c))
        return out

    def rdf_list(self, items: list[Term]) -> Term:
        head: Term = RDF_NIL
        for item in reversed(items):
            self._next += 1
            cell = self._next
            self.quads.add((cell, RDF_FIRST, item))
            self.quads.add((cell, RDF_REST, head))
            head = cell
        return head


_contexts: Contexts | None = None


def _shared_contexts() -> Contexts:
    # Built on first use, not at import: it processes the vendored contexts.
    global _contexts
    if _contexts is None:
        _contexts = Contexts()
    return _contexts


def _first_degree_hash(node: int, quads: list[Quad]) -> str:
    # Blank nodes: the node itself `_:a`, any other `_:z`. Inline, not a Python call per
    # term: the same lines, faster.
    a, z = "_:a", "_:z"
    lines = sorted([f"{(a if s == node else z) if isinstance(s, int) else s} {p} "
                    f"{(a if o == node else z) if isinstance(o, int) else o} .\n"
                    for s, p, o in quads])
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _nquads(quads: set[Quad], labels: dict[int, str]) -> str:
    # Terms are str (IRIs, literals) or int (blank nodes, all in `labels`): `get(t, t)`
    # renders both without a Python call per term.
    terms: dict[Any, str] = labels
    get = terms.get
    lines = sorted([f"{get(s, s)} {p} {get(o, o)} .\n" for s, p, o in quads])
    return "".join(lines)


def canonicalize_quads(quads: set[Quad]) -> str:
    """Canonical N-Quads (RDFC-1.0, SHA-256) of a default-graph quad set."""
    mentions: dict[int, list[Quad]] = defaultdict(list)
    for quad in quads:
        s, _, o = quad
        if isinstance(s, int):
            mentions[s].append(quad)
        if isinstance(o, int) and o != s:
            mentions[o].append(quad)
    hashes = {node: _first_degree_hash(node, qs) for node, qs in mentions.items()}
    if len(set(hashes.values())) != len(hashes):
        return _oxigraph_canonical(quads)
    order = sorted(hashes, key=hashes.__getitem__)
    return _nquads(quads, {node: f"_:c14n{i}" for i, node in enumerate(order)})


def _oxigraph_canonical(quads: set[Quad]) -> str:
    text = _nquads(quads, {node: f"_:b{node}" for q in quads for node in (q[0], q[2])
                           if isinstance(node, int)})
    dataset = pyoxigraph.Dataset(pyoxigraph.parse(text, format=pyoxigraph.RdfFormat.N_QUADS))
    dataset.canonicalize(pyoxigraph.CanonicalizationAlgorithm.RDFC_1_0)
    out = pyoxigraph.serialize(dataset, format=pyoxigraph.RdfFormat.N_QUADS)
    assert out is not None  # without an output file, serialize returns the bytes
    # split on "\n" only: str.splitlines() would also split inside literals at U+2028 etc.
    lines = sorted(line + "\n" for line in out.decode("utf-8").split("\n") if line)
    return "".join(lines)


def fast_quads(document: dict[str, Any]) -> set[Quad]:
    """The document's RDF quads, or Fallback."""
    return Walker(_shared_contexts()).document(document)


def rdfc_fast(document: dict[str, Any], *, allow_issuer_dependent: bool = False) -> str:
    """Same bytes as `canon.rdfc_reference`, usually ~20x faster."""
    # No separate check_values walk: the fast walk refuses (falls back on) every string
    # or number the reference path would refuse, and the reference path then says why.
    try:
        quads = fast_quads(document)
    except Fallback:
        return canon.rdfc_reference(document, allow_issuer_dependent=allow_issuer_dependent)
    return canonicalize_quads(quads)
