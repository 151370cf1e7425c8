"""Typed errors for Vault access and field encryption.

Messages are plain English and never carry key material, plaintext or personal data, so
callers may log them and return them in problem responses as they are.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by moment_crypto."""


class VaultConfigError(CryptoError):
    """The Vault configuration is incomplete, or a credential file cannot be read."""


class VaultUnavailable(CryptoError):
    """Vault could not be reached: connection refused, reset or timed out."""


class VaultSealed(VaultUnavailable):
    """Vault answered but is sealed, uninitialised or on standby, so it cannot serve requests."""


class VaultPermissionDenied(CryptoError):
    """Vault rejected the login, or the policy does not allow the operation."""


class VaultRequestFailed(CryptoError):
    """Vault refused or failed a request for a reason other than access or availability."""

    def __init__(
        self, message: str, *, status: int | None = None, vault_errors: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.vault_errors = vault_errors


class DecryptionFailed(CryptoError):
    """A ciphertext is tampered, truncated, or bound to another subject, field or key version."""


class KeyDestroyed(CryptoError):
    """The key needed to decrypt no longer exists; the data is unrecoverable by design."""


class SubjectKeyMissing(KeyDestroyed):
    """The subject has no data key (it was erased), so its fields cannot be decrypted."""


class InvalidKeySet(CryptoError):
    """A versioned key set read from Vault KV is malformed."""
