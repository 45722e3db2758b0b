"""`python -m microcred_issuance` serves the issuance service."""

from microcred_shared.runtime import serve

from microcred_issuance.main import build

app, rt = build()
serve(app, rt.settings)
