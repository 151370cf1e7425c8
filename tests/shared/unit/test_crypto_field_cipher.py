"""FieldCipher: AES-256-GCM tokens bound to subject, field and key version."""

from __future__ import annotations

import os

import pytest

from moment_crypto import DecryptionFailed, FieldCipher, SubjectKey
from moment_crypto.envelope import FORMAT_V1, NONCE_BYTES

KEY = os.urandom(32)
SUBJECT = "subject-0001"
cipher = FieldCipher()


@pytest.mark.parametrize("text", ["ada@example.org", "محمد بن عبد الله", "", "x" * 10_000])
def test_round_trip(text: str) -> None:
    token = cipher.encrypt(KEY, SUBJECT, "name", 1, text)
    assert cipher.decrypt(KEY, SUBJECT, "name", 1, token) == text


def test_token_layout_and_fresh_nonce() -> None:
    first = cipher.encrypt(KEY, SUBJECT, "email", 1, "same")
    second = cipher.encrypt(KEY, SUBJECT, "email", 1, "same")
    assert first[0] == FORMAT_V1
    assert len(first) == 1 + NONCE_BYTES + len(b"same") + 16
    assert first != second


@pytest.mark.parametrize(
    ("subject", "field", "version"),
    [("subject-0002", "email", 1), (SUBJECT, "name", 1), (SUBJECT, "email", 2)],
    ids=["other-subject", "other-field", "other-key-version"],
)
def test_moved_ciphertext_fails(subject: str, field: str, version: int) -> None:
    token = cipher.encrypt(KEY, SUBJECT, "email", 1, "ada@example.org")
    with pytest.raises(DecryptionFailed) as caught:
        cipher.decrypt(KEY, subject, field, version, token)
    assert "ada@example.org" not in str(caught.value)
    assert repr(field) in str(caught.value)


def test_ambiguous_binding_is_not_confused() -> None:
    # Naive concatenation would make ("ab", "c") and ("a", "bc") the same associated data.
    token = cipher.encrypt(KEY, "ab", "c", 1, "value")
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(KEY, "a", "bc", 1, token)


@pytest.mark.parametrize("position", [0, 1, NONCE_BYTES + 1, -1])
def test_bit_flip_fails(position: int) -> None:
    token = bytearray(cipher.encrypt(KEY, SUBJECT, "email", 1, "ada@example.org"))
    token[position] ^= 0x01
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(KEY, SUBJECT, "email", 1, bytes(token))


def test_wrong_key_and_truncation_fail() -> None:
    token = cipher.encrypt(KEY, SUBJECT, "email", 1, "ada@example.org")
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(os.urandom(32), SUBJECT, "email", 1, token)
    with pytest.raises(DecryptionFailed, match="malformed"):
        cipher.decrypt(KEY, SUBJECT, "email", 1, token[:20])


def test_subject_key_repr_hides_plaintext() -> None:
    key = SubjectKey("s", 1, "vault:v1:abc", KEY)
    assert KEY.hex() not in repr(key)
    assert repr(KEY) not in repr(key)
    assert "vault:v1:abc" in repr(key)
