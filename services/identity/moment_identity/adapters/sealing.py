"""Identity's sealing (transport) keys: X25519 private keys held in Vault KV.

Requests on Kafka carry personal data sealed to these keys, so whoever holds a key can read every
request still in Kafka's history. Rotating destroys the old private keys (in Vault, and here), so a
request captured before the rotation no longer opens: an erasure rotates, which extends
crypto-shredding from the database to Kafka's history. Other instances drop destroyed keys when
they next reload (at most `max_age_s` later).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from moment_contracts.identity import SealingKey
from moment_contracts.sealed import SealedBox, SealError, key_id, open_box, public_key_to_text
from moment_crypto.keysets import VersionedKeys
from moment_crypto.vault import VaultClient
from moment_identity.domain.errors import SealedInputRejected


class SealingKeyRotated(SealedInputRejected):
    """Sealed to a key this instance no longer holds: fetch the current key and seal again."""


class SealedInputOpener:
    def __init__(
        self,
        keys: VersionedKeys,
        *,
        vault: VaultClient | None = None,
        path: str = "",
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vault = vault
        self._path = path
        self._max_age_s = max_age_s
        self._clock = clock
        self._install(keys)

    @classmethod
    async def load(
        cls, vault: VaultClient, path: str, max_age_s: float = 60.0
    ) -> SealedInputOpener:
        return cls(
            await VersionedKeys.load(vault, path), vault=vault, path=path, max_age_s=max_age_s
        )

    def _install(self, keys: VersionedKeys) -> None:
        private = {
            label: X25519PrivateKey.from_private_bytes(raw) for label, raw in keys.keys.items()
        }
        self._labels = sorted(private, key=lambda label: int(label[1:]))
        self._current = private[keys.current]
        # Boxes sealed to an older key that has not been destroyed yet still open.
        self._by_kid = {key_id(k.public_key()): k for k in private.values()}
        self._loaded_at = self._clock()

    def public_key(self) -> SealingKey:
        public = self._current.public_key()
        return SealingKey(kid=key_id(public), public_key=public_key_to_text(public))

    def open(self, box: SealedBox, context: str) -> bytes:
        private = self._by_kid.get(box.kid)
        if private is None:
            raise SealingKeyRotated("sealed to a key identity does not hold")
        try:
            return open_box(box, private, context)
        except SealError as exc:
            raise SealedInputRejected("the sealed payload does not open") from exc

    async def refresh(self, *, force: bool = False) -> None:
        """Reload from Vault when stale, so keys destroyed by another instance are dropped here."""
        if self._vault is None or not (force or self._clock() - self._loaded_at > self._max_age_s):
            return
        self._install(await VersionedKeys.load(self._vault, self._path))

    async def rotate(self) -> str:
        """Make a new key current and destroy every older one. Returns the new key id."""
        if self._vault is None:
            raise RuntimeError("rotation needs the Vault client")
        label = f"v{int(self._labels[-1][1:]) + 1}"
        new = X25519PrivateKey.generate()
        raw = new.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        keys = {"current": label, label: base64.b64encode(raw).decode("ascii")}
        version = await self._vault.write_kv(self._path, keys)
        await self._vault.destroy_kv_versions(self._path, list(range(1, version)))
        self._install(VersionedKeys.parse(keys, self._path))
        return key_id(new.public_key())
