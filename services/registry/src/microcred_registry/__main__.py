"""`python -m microcred_registry` serves the registry."""

from microcred_registry.main import build
from microcred_shared.runtime import serve

app, rt = build()
serve(app, rt.settings)
