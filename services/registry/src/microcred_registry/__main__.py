"""`python -m microcred_registry` serves the registry."""

from microcred_shared.runtime import serve

from microcred_registry.main import build

app, rt = build()
serve(app, rt.settings)
