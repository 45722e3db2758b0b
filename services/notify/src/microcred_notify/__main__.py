"""`python -m microcred_notify` serves notify."""

from microcred_shared.runtime import serve

from microcred_notify.main import build

app, rt = build()
serve(app, rt.settings)
