"""Identity's sealing (transport) keys: X25519 private keys held in Vault KV.

Requests on Kafka carry personal data sealed to these keys, so whoever holds a key can read every
request still in Kafka's history. Rotating destroys the old private keys (in Vault, and here), so a
request captured before the rotation no longer opens: an erasure rotates, which extends
crypto-shredding from the database to Kafka's history. Other instances drop destroyed keys when
they next reload (at most `max_age_s` later).

Every request box is opened against its `Binding` (the request carrying it) and refused once older
than `box_max_age_s` (or issued more than `clock_skew_s` in the future), so a box lifted from a
captured request opens neither in another request nor, after its window, in its own.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.identity import SealingKey
from moment_contracts.sealed import (
    Binding,
    SealedBox,
    SealError,
    key_id,
    open_box,
    public_key_to_text,
)
from moment_crypto.keysets import VersionedKeys
from moment_crypto.vault import VaultClient
from moment_identity.domain.errors import SealedInputRejected


class SealingKeyRotated(SealedInputRejected):
    """Sealed to a key this instance no longer holds: fetch the current key and seal again."""


class SealedBoxRefused(SealedInputRejected):
    """A request box that doesn't open for the request carrying it (moved, tampered, or not bound
    at all). Refused and audited as a denial."""

    def __init__(self, field: str, problem: str = "does not open for this request") -> None:
        super().__init__(f"the {field} box {problem}")
        self.field = field


class StaleSealedBox(SealedBoxRefused):
    """The box opened, but its issue time is outside the accepted window."""

    def __init__(self, field: str) -> None:
        super().__init__(field, "is outside its time window")


def binding(request: Envelope, body: Contract, field: str) -> Binding:
    """What a box in `body.<field>` must have been sealed for: this very request."""
    reply_key = getattr(body, "reply_key", None)
    subject_id = getattr(body, "subject_id", None)
    return Binding(
        ce_type=body.ce_type,
        ce_id=request.id,
        ce_source=request.source,
        field=field,
        reply_key=reply_key if isinstance(reply_key, str) else "",
        subject_id=subject_id if isinstance(subject_id, str) else "",
    )


class SealedInputOpener:
    def __init__(
        self,
        keys: VersionedKeys,
        *,
        vault: VaultClient | None = None,
        path: str = "",
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        box_max_age_s: float = 300.0,
        clock_skew_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._box_max_age_s = box_max_age_s
        self._clock_skew_s = clock_skew_s
        self._wall_clock = wall_clock
        self._vault = vault
        self._path = path
        self._max_age_s = max_age_s
        self._clock = clock
        self._install(keys)

    @classmethod
    async def load(
        cls,
        vault: VaultClient,
        path: str,
        max_age_s: float = 60.0,
        *,
        box_max_age_s: float = 300.0,
        clock_skew_s: float = 30.0,
    ) -> SealedInputOpener:
        return cls(
            await VersionedKeys.load(vault, path),
            vault=vault,
            path=path,
            max_age_s=max_age_s,
            box_max_age_s=box_max_age_s,
            clock_skew_s=clock_skew_s,
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

    def replying_key(self, kid: str | None) -> X25519PrivateKey:
        """The key a reply MAC is made with: the one the request was sealed to while this
        instance still holds it, else the current one (the client then fetches it)."""
        return self._by_kid.get(kid or "", self._current)

    def open(self, box: SealedBox, bound: Binding) -> bytes:
        """The plaintext of a request box sealed for exactly this request, within its window."""
        private = self._by_kid.get(box.kid)
        if private is None:
            raise SealingKeyRotated("sealed to a key identity does not hold")
        try:
            plaintext = open_box(box, private, bound)
        except SealError:
            raise SealedBoxRefused(bound.field) from None
        # Checked after opening: only an authentic iat (bound by the AAD) says how old a box is.
        age = self._wall_clock() - (box.iat or 0)
        if age > self._box_max_age_s + self._clock_skew_s or age < -self._clock_skew_s:
            raise StaleSealedBox(bound.field)
        return plaintext

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
