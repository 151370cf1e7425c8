"""Reply MACs: a client knows identity wrote the reply it reads, and wrote it for its request.

Correlation ids and reply topics are visible on the commands topic, so anyone who can write to a
client's reply topic could answer first. A request that names a one-time `reply_key` gets replies
carrying an HMAC-SHA256 (header `moment_reply_mac`) under a key only identity and that client can
compute: X25519(identity's sealing private key, reply_key) = X25519(reply private key, identity's
sealing public key, which the client already trusts through identity's endorsement), through
HKDF-SHA256. Header `moment_reply_kid` names the sealing key used.

The MAC covers, length-prefixed, the request's id, source and type, the SHA-256 of the request's
body bytes, the reply's type, the correlation id and the reply's body bytes: a reply answers
exactly the bytes its client sent. One X25519, one HKDF and one HMAC: tens of microseconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

REPLY_MAC = "moment_reply_mac"
REPLY_KID = "moment_reply_kid"
_INFO = b"moment-reply-mac-v1"
_DOMAIN = b"moment-reply"
_VERSION = 1


@dataclass(frozen=True)
class Answered:
    """The request a reply answers: its CloudEvents id, source and type, and its body's digest."""

    ce_id: str
    ce_source: str
    ce_type: str
    digest: bytes

    @classmethod
    def of(cls, ce_id: str, ce_source: str, ce_type: str, body: bytes) -> Answered:
        return cls(ce_id, ce_source, ce_type, request_digest(body))


def request_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _derive(shared: bytes, reply_key: X25519PublicKey, sealing_key: X25519PublicKey) -> bytes:
    salt = _raw(reply_key) + _raw(sealing_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(shared)


def identity_mac_key(sealing: X25519PrivateKey, reply_key: X25519PublicKey) -> bytes:
    """Identity's side: its sealing private key and the request's reply key."""
    return _derive(sealing.exchange(reply_key), reply_key, sealing.public_key())


def client_mac_key(reply: X25519PrivateKey, sealing_key: X25519PublicKey) -> bytes:
    """The client's side: its one-time reply key and the sealing key it sealed the request to."""
    return _derive(reply.exchange(sealing_key), reply.public_key(), sealing_key)


def mac_input(answered: Answered, reply_type: str, correlation_id: str, body: bytes) -> bytes:
    parts = (
        _DOMAIN,
        bytes([_VERSION]),
        answered.ce_id.encode(),
        answered.ce_source.encode(),
        answered.ce_type.encode(),
        answered.digest,
        reply_type.encode(),
        correlation_id.encode(),
        body,
    )
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def reply_mac(
    key: bytes, answered: Answered, reply_type: str, correlation_id: str, body: bytes
) -> str:
    """The header's text: the HMAC-SHA256 tag, base64url without padding."""
    tag = hmac.digest(key, mac_input(answered, reply_type, correlation_id, body), "sha256")
    return base64.urlsafe_b64encode(tag).decode().rstrip("=")


def verify_reply_mac(
    key: bytes,
    mac: str,
    answered: Answered,
    reply_type: str,
    correlation_id: str,
    body: bytes,
) -> bool:
    expected = reply_mac(key, answered, reply_type, correlation_id, body)
    return hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace"))
