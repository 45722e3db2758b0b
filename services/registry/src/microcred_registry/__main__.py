"""`python -m microcred_registry` serves the registry (over TLS when given a certificate)."""

from microcred_registry.main import build
from microcred_shared.runtime import serve

app, rt = build()
serve(app, rt.settings, ssl_certfile=rt.settings.tls_certfile,
      ssl_keyfile=rt.settings.tls_keyfile)
