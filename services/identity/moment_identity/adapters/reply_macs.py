"""Identity's replies, authenticated to the client that asked (`moment_contracts.reply_mac`).

Every reply to a request naming a `reply_key` carries a MAC over what it answers, computed at
send time: a stored reply sent again too (the inbox sends one again only for the same request
bytes, whose digest it keeps). Error replies are no exception: those of the dead-letter policy go
through the same `Replier`. No Vault call: the sealing keys are in memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moment_contracts.envelope import Envelope
from moment_contracts.reply_mac import (
    REPLY_KID,
    REPLY_MAC,
    Answered,
    identity_mac_key,
    reply_mac,
)
from moment_contracts.sealed import key_id, public_key_from_text
from moment_identity.adapters.sealing import SealedInputOpener

# The fields of identity's requests that hold a box sealed to identity.
_BOX_FIELDS = ("sealed", "sealed_credentials")


class ReplyMacs:
    """`moment_messaging.replies.ReplyAuthenticator` for identity."""

    def __init__(self, opener: SealedInputOpener) -> None:
        self._opener = opener

    def headers(self, request: Envelope, reply: Envelope, correlation_id: str) -> Mapping[str, str]:
        body = _json_object(request.data)
        reply_key = body.get("reply_key")
        if not isinstance(reply_key, str):
            return {}
        try:
            public = public_key_from_text(reply_key)
        except ValueError:
            return {}
        private = self._opener.replying_key(_box_kid(body))
        try:
            key = identity_mac_key(private, public)
        except ValueError:
            # A low-order point: no shared secret, so no MAC (only its own sender sent it).
            return {}
        answered = Answered.of(request.id, request.source, request.type, request.data)
        mac = reply_mac(key, answered, reply.type, correlation_id, reply.data)
        return {REPLY_MAC: mac, REPLY_KID: key_id(private.public_key())}


def _json_object(data: bytes) -> dict[str, Any]:
    # Replies also answer requests refused as malformed: their bodies may be anything.
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def _box_kid(body: dict[str, Any]) -> str | None:
    for name in _BOX_FIELDS:
        box = body.get(name)
        if isinstance(box, dict) and isinstance(box.get("kid"), str):
            return str(box["kid"])
    return None
