"""Sealed payloads: personal data crosses Kafka only encrypted to the service that may read it.

A sender seals a JSON object to the recipient's X25519 public key (ephemeral-static ECDH, HKDF-
SHA256, AES-256-GCM), so brokers, topic dumps and anyone replaying a topic see ciphertext only. The
associated data binds the box to its message type: a box cut from one message and pasted into
another won't open.
"""

from __future__ import annotations

import base64
import hashlib
import os
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


def _derive(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=_INFO)
    return hkdf.derive(shared)


def seal(plaintext: bytes, recipient: X25519PublicKey, context: str) -> SealedBox:
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rpk = recipient.public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = _derive(ephemeral.exchange(recipient), epk, rpk)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, context.encode())
    return SealedBox(
        kid=key_id(recipient), epk=_b64(epk), nonce=_b64(nonce), ciphertext=_b64(ciphertext)
    )


def open_box(box: SealedBox, private: X25519PrivateKey, context: str) -> bytes:
    public = private.public_key()
    if box.kid != key_id(public):
        raise SealError("sealed for another key")
    try:
        epk = _unb64(box.epk)
        rpk = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = _derive(private.exchange(X25519PublicKey.from_public_bytes(epk)), epk, rpk)
        return AESGCM(key).decrypt(_unb64(box.nonce), _unb64(box.ciphertext), context.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealError("the sealed box does not open") from exc
