"""Blind indexes: keyed HMAC-SHA256 of normalised values, for equality lookups on encrypted data.

Keys are loaded from Vault KV once and used locally, so a lookup costs no Vault call. Each index
is domain-separated by field name, so equal values in different fields do not collide.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Self

from moment_crypto.keysets import VersionedKeys
from moment_crypto.vault import VaultClient

_DOMAIN = b"moment.blind-index"


def _message(field: str, value: str) -> bytes:
    parts = (_DOMAIN, field.encode("utf-8"), value.encode("utf-8"))
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


class BlindIndexer:
    """Computes "vN:<hex>" blind indexes under the current key, or under every held key."""

    def __init__(self, keys: VersionedKeys) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"BlindIndexer(current={self._keys.current!r}, versions={self._keys.versions()!r})"

    @classmethod
    async def load(cls, vault: VaultClient, path: str) -> Self:
        """An indexer with the key set read from the KV v2 secret at `path`."""
        return cls(await VersionedKeys.load(vault, path))

    @property
    def current_version(self) -> str:
        return self._keys.current

    def _compute(self, version: str, field: str, value: str) -> str:
        digest = hmac.new(self._keys.keys[version], _message(field, value), hashlib.sha256)
        return f"{version}:{digest.hexdigest()}"

    def index(self, field: str, normalized_value: str) -> str:
        """The index to store, under the current key version."""
        return self._compute(self._keys.current, field, normalized_value)

    def candidates(self, field: str, normalized_value: str) -> list[str]:
        """The index under every held version, current first, for lookups during rotation."""
        return [self._compute(v, field, normalized_value) for v in self._keys.versions()]
