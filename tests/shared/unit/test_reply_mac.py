"""Reply MACs: pinned bytes, so a client in another language can check its implementation, and
every part of what a reply answers counts."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from moment_client.reply_check import ReplyMacCheck
from moment_contracts.envelope import CORRELATION_ID, Envelope
from moment_contracts.reply_mac import (
    REPLY_KID,
    REPLY_MAC,
    Answered,
    client_mac_key,
    identity_mac_key,
    mac_input,
    reply_mac,
    verify_reply_mac,
)
from moment_contracts.sealed import key_id

IDENTITY = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CLIENT = X25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
REQUEST_BODY = b'{"x":1}'
ANSWERED = Answered.of("req-1", "/storefront", "moment.identity.login.v1", REQUEST_BODY)
REPLY_TYPE = "moment.identity.login-succeeded.v1"
REPLY_BODY = b'{"ok":true}'
PINNED_INPUT = (
    "0000000c6d6f6d656e742d7265706c790000000101000000057265712d310000000b2f73746f726566726f6e74"
    "000000186d6f6d656e742e6964656e746974792e6c6f67696e2e7631000000205041bf1f713df204784353e82f"
    "6a4a535931cb64f1f4b4a5aeaffcb720918b22000000226d6f6d656e742e6964656e746974792e6c6f67696e2d"
    "7375636365656465642e763100000006636f72722d310000000b7b226f6b223a747275657d"
)
PINNED_KEY = "1445111f0d0d4ccd17375155acea4b8b81bd276081aa795788281126f3901d9c"
PINNED_MAC = "zfDpK1t_Y1G_mGM4JQ-MktFKAx0KNqRxT8ikhSZf4Ns"


def _raw(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def test_the_mac_input_is_pinned_and_length_prefixed() -> None:
    parts = [
        b"moment-reply",
        b"\x01",
        b"req-1",
        b"/storefront",
        b"moment.identity.login.v1",
        hashlib.sha256(REQUEST_BODY).digest(),
        REPLY_TYPE.encode(),
        b"corr-1",
        REPLY_BODY,
    ]
    expected = b"".join(struct.pack(">I", len(part)) + part for part in parts)
    assert mac_input(ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY) == expected
    assert expected.hex() == PINNED_INPUT


def test_both_sides_derive_the_pinned_key_and_mac() -> None:
    shared = IDENTITY.exchange(CLIENT.public_key())
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_raw(CLIENT) + _raw(IDENTITY),
        info=b"moment-reply-mac-v1",
    ).derive(shared)
    assert derived.hex() == PINNED_KEY
    assert identity_mac_key(IDENTITY, CLIENT.public_key()) == derived
    assert client_mac_key(CLIENT, IDENTITY.public_key()) == derived
    tag = hmac.digest(derived, bytes.fromhex(PINNED_INPUT), "sha256")
    mac = reply_mac(derived, ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY)
    assert mac == PINNED_MAC
    assert mac == base64.urlsafe_b64encode(tag).decode().rstrip("=")


@pytest.mark.parametrize(
    "change",
    [
        {"ce_id": "req-2"},
        {"ce_source": "/attacker"},
        {"ce_type": "moment.identity.read-personal-data.v1"},
        {"digest": hashlib.sha256(b'{"x":2}').digest()},
    ],
)
def test_a_mac_for_another_request_is_refused(change: dict[str, Any]) -> None:
    key = client_mac_key(CLIENT, IDENTITY.public_key())
    other = dataclasses.replace(ANSWERED, **change)
    assert not verify_reply_mac(key, PINNED_MAC, other, REPLY_TYPE, "corr-1", REPLY_BODY)


@pytest.mark.parametrize(
    ("reply_type", "correlation_id", "body"),
    [
        ("moment.identity.error.v1", "corr-1", REPLY_BODY),
        (REPLY_TYPE, "corr-2", REPLY_BODY),
        (REPLY_TYPE, "corr-1", b'{"ok":false}'),
        (REPLY_TYPE, "corr-1", REPLY_BODY + b" "),
    ],
)
def test_an_altered_reply_is_refused(reply_type: str, correlation_id: str, body: bytes) -> None:
    key = client_mac_key(CLIENT, IDENTITY.public_key())
    assert verify_reply_mac(key, PINNED_MAC, ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY)
    assert not verify_reply_mac(key, PINNED_MAC, ANSWERED, reply_type, correlation_id, body)


def test_a_mac_made_with_another_key_is_refused() -> None:
    attacker = X25519PrivateKey.generate()
    # What an attacker who knows only the client's public reply key can compute.
    forged = reply_mac(
        identity_mac_key(attacker, CLIENT.public_key()), ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY
    )
    key = client_mac_key(CLIENT, IDENTITY.public_key())
    assert not verify_reply_mac(key, forged, ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY)
    assert not verify_reply_mac(key, "", ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY)
    assert not verify_reply_mac(key, "\udcff", ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY)


def _request() -> Envelope:
    return Envelope(type=ANSWERED.ce_type, source="/storefront", data=REQUEST_BODY, id="req-1")


def _reply(sealing: X25519PrivateKey, **headers: str) -> Envelope:
    key = identity_mac_key(sealing, CLIENT.public_key())
    extra = {
        CORRELATION_ID: "corr-1",
        REPLY_MAC: reply_mac(key, ANSWERED, REPLY_TYPE, "corr-1", REPLY_BODY),
        REPLY_KID: key_id(sealing.public_key()),
    }
    extra.update(headers)
    return Envelope(type=REPLY_TYPE, source="/identity", data=REPLY_BODY, extra=extra)


async def test_the_client_check_accepts_identitys_reply_and_nothing_else() -> None:
    rotated = X25519PrivateKey.generate()

    async def current_key() -> X25519PublicKey:
        return rotated.public_key()

    check = ReplyMacCheck(CLIENT, IDENTITY.public_key(), current_key)
    assert check.verdict(_request(), _reply(IDENTITY)) is True
    assert check.verdict(_request(), _reply(IDENTITY, **{REPLY_MAC: ""})) is False
    unsigned = Envelope(type=REPLY_TYPE, source="/identity", data=REPLY_BODY)
    assert check.verdict(_request(), unsigned) is False
    # Made with a key the client has not fetched yet (identity rotated): undecided until learnt.
    assert check.verdict(_request(), _reply(rotated)) is None
    await check.learn()
    assert check.verdict(_request(), _reply(rotated)) is True
    # A key named in the header but not the one the MAC was made with.
    wrong = _reply(X25519PrivateKey.generate(), **{REPLY_KID: key_id(IDENTITY.public_key())})
    assert check.verdict(_request(), wrong) is False
