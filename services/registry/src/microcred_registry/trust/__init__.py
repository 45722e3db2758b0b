"""The trust list (ADR 26): the providers the backbone onboarded whose quality assurance is in
good standing, published as issuer registries that wallets and verifiers read — the DCC
registry JSON (`dcc-legacy`) and OpenID Federation statements signed by the registry.

domain.py      who is listed and what an entry says (pure)
statements.py  OpenID Federation entity statements: Ed25519-signed JWTs (pure)
handlers.py    the providers projection (rows from the compacted providers topic)
routes.py      /trust/registry.json, /.well-known/openid-federation, /trust/fetch, /trust/list
"""
