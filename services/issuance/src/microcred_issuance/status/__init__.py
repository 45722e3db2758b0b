"""Status: the register of issued credentials, revoke / suspend / unsuspend by the issuing
provider, and the signed revocation and suspension lists. Depends on keys."""
