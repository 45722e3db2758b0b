"""`python -m microcred_notify` serves notify."""

from microcred_notify.main import build
from microcred_shared.runtime import serve

app, rt = build()
serve(app, rt.settings)
