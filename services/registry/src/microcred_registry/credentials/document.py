"""Reading a stored credential document: JSON of any shape (what a definition or a VC-API
caller put in it), so each reader checks what it finds. Its dates, and its text in the
reader's language. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def moment(value: Any) -> datetime | None:
    """A date-time as the document writes it (ISO 8601, `Z` or an offset); None for anything
    else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def localised(obj: Any, term: str, lang: str) -> str:
    """`obj`'s `term` in `lang` (French: `<term>Fr`, where the document has it), else the
    term itself; "" where there is no text (or `obj` is not an object)."""
    if not isinstance(obj, dict):
        return ""
    value = (obj.get(term + "Fr") if lang == "fr" else None) or obj.get(term)
    return value if isinstance(value, str) else ""
