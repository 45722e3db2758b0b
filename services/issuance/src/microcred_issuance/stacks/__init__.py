"""Stacks: when a learner's credentials complete a stack, and how an awarded stack follows
its components' status (ADR 12). Depends on status and keys."""
