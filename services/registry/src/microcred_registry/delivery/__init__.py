"""Delivery into a learner's own wallet: the Learner Credential Wallet's VC-API exchange
(ADR 27)."""
