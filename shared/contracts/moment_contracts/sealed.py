"""Sealed payloads: personal data crosses Kafka only encrypted to the service that may read it.

A sender seals a JSON object to the recipient's X25519 public key (ephemeral-static ECDH, HKDF-
SHA256, AES-256-GCM), so brokers, topic dumps and anyone replaying a topic see ciphertext only.

A box in a request is sealed with a `Binding`: its associated data names the request that carries
it (type, id, source, reply key, subject, field) and the box's issue time, so a box cut from one
request and pasted into another, or into another field, won't open, and the recipient can refuse
an old one. Boxes in replies and events are sealed to a one-time or a mailer key and bound to their
message type only (a plain `context` string).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from dataclasses import dataclass
from typing import Annotated, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import Field

from moment_contracts.base import Contract

_INFO = b"moment-sealed-box-v1"
_BINDING_DOMAIN = b"moment-request-box"
_BINDING_VERSION = 1
_B64 = r"^[A-Za-z0-9_-]*={0,2}$"


class SealError(ValueError):
    """A sealed box could not be opened: wrong key, wrong context, or tampered."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


def key_id(public: X25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def endorsement_statement(kid: str, public_key: str) -> bytes:
    """The exact bytes identity signs to endorse a sealing key."""
    return f"moment-sealing-key-v1|{kid}|{public_key}".encode()


def public_key_from_text(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(_unb64(text))


def public_key_to_text(public: X25519PublicKey) -> str:
    return _b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


# An X25519 public key as public_key_to_text writes it: 32 bytes, base64url, one pad character.
# Checked by the schema, so a bad key is a schema violation at the door, not an error mid-request.
PublicKeyText = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}=$")]


class SealedBox(Contract):
    ce_type: ClassVar[str] = "moment.sealed-box.v1"

    kid: str = Field(max_length=64)
    epk: str = Field(pattern=_B64, max_length=64)
    nonce: str = Field(pattern=_B64, max_length=32)
    ciphertext: str = Field(pattern=_B64, max_length=64_000)
    # When a request box was sealed (Unix seconds). Bound by the associated data, so it can't be
    # moved forward; absent on reply and event boxes.
    iat: int | None = Field(default=None, ge=0, lt=2**40)


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


@dataclass(frozen=True)
class Binding:
    """The request a sealed box belongs to. Every attribute, and the box's issue time, is in the
    associated data: change any of them and the box no longer opens."""

    ce_type: str
    ce_id: str
    ce_source: str
    field: str
    reply_key: str = ""
    subject_id: str = ""

    def associated_data(self, iat: int) -> bytes:
        if not 0 <= iat < 2**40:
            raise ValueError("iat must be Unix seconds")
        return _length_prefixed(
            _BINDING_DOMAIN,
            bytes([_BINDING_VERSION]),
            self.ce_type.encode(),
            self.ce_id.encode(),
            self.ce_source.encode(),
            self.field.encode(),
            self.reply_key.encode(),
            self.subject_id.encode(),
            struct.pack(">Q", iat),
        )


def _derive(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=_INFO)
    return hkdf.derive(shared)


def seal(
    plaintext: bytes,
    recipient: X25519PublicKey,
    context: str | Binding,
    *,
    iat: int | None = None,
) -> SealedBox:
    """Seal to `recipient`. A `Binding` makes a request box stamped with `iat` (default: now)."""
    if isinstance(context, Binding):
        iat = int(time.time()) if iat is None else iat
        aad = context.associated_data(iat)
    else:
        iat = None
        aad = context.encode()
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rpk = recipient.public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = _derive(ephemeral.exchange(recipient), epk, rpk)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, aad)
    return SealedBox(
        kid=key_id(recipient),
        epk=_b64(epk),
        nonce=_b64(nonce),
        ciphertext=_b64(ciphertext),
        iat=iat,
    )


def open_box(box: SealedBox, private: X25519PrivateKey, context: str | Binding) -> bytes:
    """Open a box sealed with the same context. Checks nothing about the box's age: the recipient
    compares `box.iat` with its own clock and window."""
    public = private.public_key()
    if box.kid != key_id(public):
        raise SealError("sealed for another key")
    if isinstance(context, Binding):
        if box.iat is None:
            raise SealError("a request box must carry its issue time")
        aad = context.associated_data(box.iat)
    elif box.iat is not None:
        raise SealError("a request box opened without its binding")
    else:
        aad = context.encode()
    try:
        epk = _unb64(box.epk)
        rpk = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = _derive(private.exchange(X25519PublicKey.from_public_bytes(epk)), epk, rpk)
        return AESGCM(key).decrypt(_unb64(box.nonce), _unb64(box.ciphertext), aad)
    except (InvalidTag, ValueError) as exc:
        raise SealError("the sealed box does not open") from exc
