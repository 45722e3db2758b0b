"""Issuing: an achieved assessment, a completed stack or a provider's VC-API request becomes
a signed Open Badges 3.0 credential, through one use case (handlers.issue).
Depends on stacks, status and keys."""
