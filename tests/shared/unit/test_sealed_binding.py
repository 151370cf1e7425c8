"""The associated data of a request box: every part of the binding, and the issue time, counts."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from moment_contracts.sealed import Binding, SealError, open_box, seal

BOUND = Binding(
    ce_type="moment.identity.read-personal-data.v1",
    ce_id="7f1c9a0e-request",
    ce_source="/storefront",
    field="sealed_credentials",
    reply_key="A" * 43 + "=",
    subject_id="subject-1",
)


def test_a_bound_box_opens_for_its_own_request_and_carries_its_issue_time() -> None:
    key = X25519PrivateKey.generate()
    box = seal(b"secret", key.public_key(), BOUND, iat=1_800_000_000)
    assert box.iat == 1_800_000_000
    assert open_box(box, key, BOUND) == b"secret"


@pytest.mark.parametrize(
    "change",
    [
        {"ce_type": "moment.identity.export-personal-data.v1"},
        {"ce_type": "moment.identity.erase-personal-data.v1"},
        {"ce_id": "another-request"},
        {"ce_source": "/attacker"},
        {"field": "sealed_changes"},
        {"reply_key": "B" * 43 + "="},
        {"reply_key": ""},
        {"subject_id": "subject-2"},
        {"subject_id": ""},
    ],
)
def test_a_box_moved_to_any_other_request_or_field_does_not_open(change: dict[str, str]) -> None:
    key = X25519PrivateKey.generate()
    box = seal(b"secret", key.public_key(), BOUND)
    with pytest.raises(SealError):
        open_box(box, key, dataclasses.replace(BOUND, **change))


def test_the_issue_time_cannot_be_moved_forward() -> None:
    key = X25519PrivateKey.generate()
    box = seal(b"secret", key.public_key(), BOUND, iat=1_000)
    with pytest.raises(SealError):
        open_box(box.model_copy(update={"iat": 2_000}), key, BOUND)


def test_a_bound_box_and_a_message_type_box_never_stand_in_for_each_other() -> None:
    key = X25519PrivateKey.generate()
    plain = seal(b"secret", key.public_key(), BOUND.ce_type)
    assert plain.iat is None
    with pytest.raises(SealError):
        open_box(plain, key, BOUND)  # a legacy box, bound to the type only, is refused
    bound = seal(b"secret", key.public_key(), BOUND)
    with pytest.raises(SealError):
        open_box(bound, key, BOUND.ce_type)
    with pytest.raises(SealError):
        open_box(plain.model_copy(update={"iat": 5}), key, BOUND)


def test_parts_are_length_prefixed_so_no_two_bindings_share_associated_data() -> None:
    a = Binding("t", "ab", "c", "f")
    b = Binding("t", "a", "bc", "f")
    assert a.associated_data(1) != b.associated_data(1)
    key = X25519PrivateKey.generate()
    with pytest.raises(SealError):
        open_box(seal(b"x", key.public_key(), a), key, b)


def test_the_associated_data_is_exactly_as_documented() -> None:
    def part(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    expected = b"".join(
        [
            part(b"moment-request-box"),
            part(b"\x01"),
            part(BOUND.ce_type.encode()),
            part(BOUND.ce_id.encode()),
            part(BOUND.ce_source.encode()),
            part(BOUND.field.encode()),
            part(BOUND.reply_key.encode()),
            part(BOUND.subject_id.encode()),
            part(struct.pack(">Q", 1_800_000_000)),
        ]
    )
    assert BOUND.associated_data(1_800_000_000) == expected


@pytest.mark.parametrize("iat", [-1, 2**40])
def test_an_issue_time_out_of_range_is_refused(iat: int) -> None:
    with pytest.raises(ValueError, match="iat"):
        BOUND.associated_data(iat)
