"""`python -m microcred_issuance` serves the issuance service."""

from microcred_issuance.main import build
from microcred_shared.runtime import serve

app, rt = build()
serve(app, rt.settings)
