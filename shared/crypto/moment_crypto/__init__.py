"""Vault access, envelope encryption with per-subject keys, and blind indexes."""

from moment_crypto.blind_index import BlindIndexer
from moment_crypto.config import VaultConfig
from moment_crypto.envelope import FieldCipher, SubjectKey, SubjectKeyring, WrappedKey
from moment_crypto.errors import (
    CryptoError,
    DecryptionFailed,
    InvalidKeySet,
    KeyDestroyed,
    SubjectKeyMissing,
    VaultConfigError,
    VaultPermissionDenied,
    VaultRequestFailed,
    VaultSealed,
    VaultUnavailable,
)
from moment_crypto.keycache import KeyCache
from moment_crypto.keysets import VersionedKeys, new_key_set
from moment_crypto.vault import VaultClient

__all__ = [
    "BlindIndexer",
    "CryptoError",
    "DecryptionFailed",
    "FieldCipher",
    "InvalidKeySet",
    "KeyCache",
    "KeyDestroyed",
    "SubjectKey",
    "SubjectKeyMissing",
    "SubjectKeyring",
    "VaultClient",
    "VaultConfig",
    "VaultConfigError",
    "VaultPermissionDenied",
    "VaultRequestFailed",
    "VaultSealed",
    "VaultUnavailable",
    "VersionedKeys",
    "WrappedKey",
    "new_key_set",
]
