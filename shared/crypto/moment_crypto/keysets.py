"""Versioned symmetric key sets kept in Vault KV v2 (blind-index keys, password pepper).

Layout of the secret: {"current": "v2", "v1": "<base64 32 bytes>", "v2": "<base64 32 bytes>"}.
Rotation adds a version and moves "current"; old versions stay until re-indexing is done.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from moment_crypto.errors import InvalidKeySet
from moment_crypto.vault import VaultClient

KEY_BYTES = 32
_VERSION = re.compile(r"^v([1-9][0-9]*)$")


def new_key_set() -> dict[str, str]:
    """A fresh single-version key set in the KV layout, for bootstrapping."""
    return {"current": "v1", "v1": base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")}


@dataclass(frozen=True)
class VersionedKeys:
    """Key bytes by version label ("v1", "v2"...) and the label of the current version."""

    current: str
    keys: Mapping[str, bytes] = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, data: Mapping[str, str], where: str) -> Self:
        current = data.get("current", "")
        keys: dict[str, bytes] = {}
        for label, encoded in data.items():
            if label == "current":
                continue
            if not _VERSION.match(label):
                raise InvalidKeySet(f"key set {where} has an entry {label!r} that is not vN")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidKeySet(f"key {label} of key set {where} is not base64") from None
            if len(key) != KEY_BYTES:
                raise InvalidKeySet(f"key {label} of key set {where} is not {KEY_BYTES} bytes")
            keys[label] = key
        if current not in keys:
            raise InvalidKeySet(f"key set {where} names current={current!r}, which it lacks")
        return cls(current=current, keys=keys)

    @classmethod
    async def load(cls, vault: VaultClient, path: str) -> Self:
        """Read and validate the key set at a KV v2 path (one Vault call)."""
        return cls.parse(await vault.read_kv(path), path)

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]

    def versions(self) -> list[str]:
        """Every held version label, current first, then newest to oldest."""
        others = sorted(
            (v for v in self.keys if v != self.current), key=lambda v: int(v[1:]), reverse=True
        )
        return [self.current, *others]
