"""Opens sealed request payloads with identity's X25519 private keys, held in Vault KV."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from moment_contracts.identity import SealingKey
from moment_contracts.sealed import SealedBox, SealError, key_id, open_box, public_key_to_text
from moment_crypto.keysets import VersionedKeys
from moment_identity.domain.errors import SealedInputRejected


class SealedInputOpener:
    def __init__(self, keys: VersionedKeys) -> None:
        self._private = {
            label: X25519PrivateKey.from_private_bytes(raw) for label, raw in keys.keys.items()
        }
        self._current = self._private[keys.current]
        # Boxes sealed to a previous key (during rotation) still open.
        self._by_kid = {key_id(k.public_key()): k for k in self._private.values()}

    def public_key(self) -> SealingKey:
        public = self._current.public_key()
        return SealingKey(kid=key_id(public), public_key=public_key_to_text(public))

    def open(self, box: SealedBox, context: str) -> bytes:
        private = self._by_kid.get(box.kid)
        if private is None:
            raise SealedInputRejected("sealed to a key identity does not hold")
        try:
            return open_box(box, private, context)
        except SealError as exc:
            raise SealedInputRejected("the sealed payload does not open") from exc
