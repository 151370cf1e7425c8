"""Envelope encryption: one data key per subject, wrapped by Vault Transit, AES-GCM per field.

The database stores only the wrapped key ("vault:vN:...") and field tokens. Forgetting a subject
means deleting its wrapped key (and evicting the cache): every field token becomes unreadable.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from moment_crypto.errors import DecryptionFailed
from moment_crypto.keycache import KeyCache
from moment_crypto.vault import VaultClient

DATA_KEY_BYTES = 32
FORMAT_V1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_AD_DOMAIN = b"moment.field-cipher"


@dataclass(frozen=True)
class SubjectKey:
    """A subject's data key: store `wrapped` and `version`, keep `plaintext` in memory only."""

    subject_id: str
    version: int
    wrapped: str
    plaintext: bytes = dataclasses.field(repr=False)


class WrappedKey(NamedTuple):
    """A stored wrapped data key, as read back from the database."""

    subject_id: str
    version: int
    wrapped: str


class SubjectKeyring:
    """Creates and unwraps per-subject data keys, caching unwrapped keys in process."""

    def __init__(self, vault: VaultClient, key_name: str, cache: KeyCache | None = None) -> None:
        self._vault = vault
        self._key_name = key_name
        self._cache = cache or KeyCache(vault.config.key_cache_size, vault.config.key_cache_ttl_s)

    @property
    def cache(self) -> KeyCache:
        return self._cache

    async def new_key(self, subject_id: str, version: int = 1) -> SubjectKey:
        """A fresh data key for a subject, from one Vault call; it is cached right away."""
        plaintext, wrapped = await self._vault.generate_data_key(self._key_name)
        _check_length(plaintext)
        self._cache.put(subject_id, version, plaintext)
        return SubjectKey(subject_id, version, wrapped, plaintext)

    async def unwrap(self, subject_id: str, version: int, wrapped: str) -> bytes:
        """The plaintext data key: from the cache, else unwrapped by Vault and cached."""
        cached = self._cache.get(subject_id, version)
        if cached is not None:
            return cached
        (plaintext,) = await self._vault.decrypt_data_keys(self._key_name, [wrapped])
        _check_length(plaintext)
        self._cache.put(subject_id, version, plaintext)
        return plaintext

    async def unwrap_many(self, items: Iterable[WrappedKey]) -> dict[tuple[str, int], bytes]:
        """Plaintext keys by (subject_id, version); cache misses are unwrapped in one batch."""
        found: dict[tuple[str, int], bytes] = {}
        misses: dict[tuple[str, int], str] = {}
        for item in items:
            ref = (item.subject_id, item.version)
            if ref in found or ref in misses:
                continue
            cached = self._cache.get(*ref)
            if cached is None:
                misses[ref] = item.wrapped
            else:
                found[ref] = cached
        if misses:
            plaintexts = await self._vault.decrypt_data_keys(self._key_name, list(misses.values()))
            for ref, plaintext in zip(misses, plaintexts, strict=True):
                _check_length(plaintext)
                self._cache.put(*ref, plaintext)
                found[ref] = plaintext
        return found

    def forget(self, subject_id: str) -> None:
        """Evict every cached key version of a subject (on erasure)."""
        self._cache.evict(subject_id)


def _check_length(key: bytes) -> None:
    if len(key) != DATA_KEY_BYTES:
        raise DecryptionFailed(f"a data key has {len(key)} bytes instead of {DATA_KEY_BYTES}")


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def associated_data(subject_id: str, field_name: str, key_version: int) -> bytes:
    """The AEAD associated data binding a token to its subject, field, key version and format."""
    if not 0 <= key_version < 2**32:
        raise ValueError("key_version must fit in 32 unsigned bits")
    return _length_prefixed(
        _AD_DOMAIN,
        bytes([FORMAT_V1]),
        subject_id.encode("utf-8"),
        field_name.encode("utf-8"),
        struct.pack(">I", key_version),
    )


class FieldCipher:
    """AES-256-GCM for single fields. Token = format byte | 12-byte nonce | ciphertext+tag."""

    def encrypt(
        self, key: bytes, subject_id: str, field: str, key_version: int, plaintext: str
    ) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        ad = associated_data(subject_id, field, key_version)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), ad)
        return bytes([FORMAT_V1]) + nonce + sealed

    def decrypt(
        self, key: bytes, subject_id: str, field: str, key_version: int, token: bytes
    ) -> str:
        if len(token) < 1 + NONCE_BYTES + TAG_BYTES or token[0] != FORMAT_V1:
            raise DecryptionFailed(f"field {field!r} holds a malformed ciphertext")
        nonce = token[1 : 1 + NONCE_BYTES]
        ad = associated_data(subject_id, field, key_version)
        try:
            plaintext = AESGCM(key).decrypt(nonce, token[1 + NONCE_BYTES :], ad)
        except InvalidTag:
            raise DecryptionFailed(
                f"field {field!r} failed authentication: the ciphertext was altered or "
                "belongs to another subject, field or key version"
            ) from None
        return plaintext.decode("utf-8")
