"""Vault access, envelope encryption with per-subject keys, and blind indexes."""
