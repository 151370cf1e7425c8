"""Identity opens a request box only for its own request, and only within its time window."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from moment_contracts.sealed import Binding, seal
from moment_crypto.keysets import VersionedKeys
from moment_identity.adapters.sealing import SealedBoxRefused, SealedInputOpener, StaleSealedBox

NOW = 1_800_000_000.0
BOUND = Binding("moment.identity.login.v1", "r-1", "/storefront", "sealed", reply_key="k")


def opener_and_key() -> tuple[SealedInputOpener, X25519PrivateKey]:
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    keys = VersionedKeys(current="v1", keys={"v1": raw})
    opener = SealedInputOpener(keys, box_max_age_s=300, clock_skew_s=30, wall_clock=lambda: NOW)
    return opener, private


@pytest.mark.parametrize("age", [0, 299, 330, -30])
def test_a_box_within_its_window_opens(age: int) -> None:
    opener, private = opener_and_key()
    box = seal(b"fields", private.public_key(), BOUND, iat=int(NOW) - age)
    assert opener.open(box, BOUND) == b"fields"


@pytest.mark.parametrize("age", [331, 86_400, -31, -86_400])
def test_a_box_older_than_its_window_or_from_the_future_is_stale(age: int) -> None:
    opener, private = opener_and_key()
    box = seal(b"fields", private.public_key(), BOUND, iat=int(NOW) - age)
    with pytest.raises(StaleSealedBox):
        opener.open(box, BOUND)


def test_a_box_for_another_request_is_refused_naming_the_field_only() -> None:
    opener, private = opener_and_key()
    box = seal(b"fields", private.public_key(), BOUND, iat=int(NOW))
    other = Binding(BOUND.ce_type, "r-2", BOUND.ce_source, "sealed", reply_key="attacker")
    with pytest.raises(SealedBoxRefused) as refused:
        opener.open(box, other)
    assert refused.value.field == "sealed"
    assert not isinstance(refused.value, StaleSealedBox)
