"""Checking that a reply comes from identity, for this very request (`moment_contracts.reply_mac`).

A reply to a request that named a one-time `reply_key` must carry a MAC only identity and this
client can compute. Identity makes it with the sealing key the request was sealed to, or, when it
has rotated that key away since (an erasure rotates it), with its current key. A reply naming a
key this client doesn't know yet is held back until the client has fetched identity's current,
endorsed key; nothing else can vouch for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from moment_contracts.envelope import CORRELATION_ID, Envelope
from moment_contracts.reply_mac import (
    REPLY_KID,
    REPLY_MAC,
    Answered,
    client_mac_key,
    verify_reply_mac,
)
from moment_contracts.sealed import key_id


class ReplyCheck(Protocol):
    def verdict(self, request: Envelope, reply: Envelope) -> bool | None:
        """True: `reply` is authentic; False: it is not; None: it names a key this client does
        not know yet (call `learn`, then ask again)."""
        ...

    async def learn(self) -> None:
        """Fetch what an undecided reply needs; called at most once per request."""
        ...


class ReplyMacCheck:
    """Identity's replies to one request sealed to `sealing_key`, with `reply_key` as its
    one-time key. `current_key` fetches identity's current endorsed sealing key."""

    def __init__(
        self,
        reply_key: X25519PrivateKey,
        sealing_key: X25519PublicKey,
        current_key: Callable[[], Awaitable[X25519PublicKey]],
    ) -> None:
        self._reply_key = reply_key
        self._current_key = current_key
        self._macs: dict[str, bytes] = {}
        self._add(sealing_key)

    def _add(self, sealing_key: X25519PublicKey) -> None:
        self._macs[key_id(sealing_key)] = client_mac_key(self._reply_key, sealing_key)

    def verdict(self, request: Envelope, reply: Envelope) -> bool | None:
        mac = reply.extra.get(REPLY_MAC)
        kid = reply.extra.get(REPLY_KID)
        if not mac or not kid:
            return False
        key = self._macs.get(kid)
        if key is None:
            return None
        answered = Answered.of(request.id, request.source, request.type, request.data)
        correlation_id = reply.extra.get(CORRELATION_ID, "")
        return verify_reply_mac(key, mac, answered, reply.type, correlation_id, reply.data)

    async def learn(self) -> None:
        self._add(await self._current_key())
