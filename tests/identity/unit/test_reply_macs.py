"""Identity's reply MACs: made for any request that names a usable reply key, checkable by the
client that holds it, and never an exception whatever the request holds."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from moment_client.reply_check import ReplyMacCheck
from moment_contracts.envelope import CORRELATION_ID, Envelope
from moment_contracts.reply_mac import REPLY_KID, REPLY_MAC
from moment_contracts.sealed import key_id, public_key_to_text
from moment_crypto.keysets import VersionedKeys
from moment_identity.adapters.reply_macs import ReplyMacs
from moment_identity.adapters.sealing import SealedInputOpener

REPLY = Envelope(type="moment.identity.login-succeeded.v1", source="/identity", data=b"{}")


def opener_and_key() -> tuple[SealedInputOpener, X25519PrivateKey]:
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return SealedInputOpener(VersionedKeys(current="v1", keys={"v1": raw})), private


def request(body: object) -> Envelope:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Envelope(type="moment.identity.login.v1", source="/storefront", data=data, id="r-1")


async def test_the_mac_verifies_for_the_client_holding_the_reply_key() -> None:
    opener, sealing = opener_and_key()
    reply_key = X25519PrivateKey.generate()
    sent = request({"reply_key": public_key_to_text(reply_key.public_key())})
    headers = ReplyMacs(opener).headers(sent, REPLY, "c-1")
    assert headers[REPLY_KID] == key_id(sealing.public_key())

    async def no_key() -> X25519PublicKey:
        raise AssertionError("the key is known")

    check = ReplyMacCheck(reply_key, sealing.public_key(), no_key)
    reply = Envelope(type=REPLY.type, source=REPLY.source, data=REPLY.data, extra={**headers})
    assert check.verdict(sent, reply) is False  # no correlation id: not the reply to c-1
    reply = Envelope(
        type=REPLY.type,
        source=REPLY.source,
        data=REPLY.data,
        extra={**headers, CORRELATION_ID: "c-1"},
    )
    assert check.verdict(sent, reply) is True
    other = X25519PrivateKey.generate()
    assert ReplyMacCheck(other, sealing.public_key(), no_key).verdict(sent, reply) is False


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[" * 100_000,
        [],
        {},
        {"reply_key": None},
        {"reply_key": "short"},
        {"reply_key": "A" * 43 + "="},  # the all-zero point: no shared secret
        {"reply_key": public_key_to_text(X25519PrivateKey.generate().public_key())[:-1] + "!"},
    ],
)
def test_no_usable_reply_key_means_no_mac_and_no_error(body: object) -> None:
    opener, _ = opener_and_key()
    assert ReplyMacs(opener).headers(request(body), REPLY, "c-1") == {}


def test_the_mac_is_made_with_the_key_the_request_was_sealed_to_while_it_is_held() -> None:
    opener, sealing = opener_and_key()
    reply_key = public_key_to_text(X25519PrivateKey.generate().public_key())
    unknown = {"reply_key": reply_key, "sealed": {"kid": "0123456789abcdef"}}
    headers = ReplyMacs(opener).headers(request(unknown), REPLY, "c-1")
    assert headers[REPLY_KID] == key_id(sealing.public_key())
    assert REPLY_MAC in headers
