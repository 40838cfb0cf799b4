"""Accounts, tokens and nonces (seed 003's Auth role)."""
