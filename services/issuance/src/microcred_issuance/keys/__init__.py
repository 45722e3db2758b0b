"""Issuer keys: one Ed25519 key per provider, encrypted at rest, rotated by the operator;
the issuer profile and public keys announced to the registry; the signer every proof is
made with. The lowest context: depends on no other."""
