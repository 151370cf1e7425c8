"""Versioned key sets and blind indexes, computed locally."""

from __future__ import annotations

import base64
import os

import pytest

from moment_crypto import BlindIndexer, InvalidKeySet, VaultConfig, VersionedKeys, new_key_set


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def two_versions() -> VersionedKeys:
    return VersionedKeys.parse(
        {"current": "v2", "v1": _b64(os.urandom(32)), "v2": _b64(os.urandom(32))}, "test"
    )


def test_index_is_stable_versioned_and_field_separated() -> None:
    indexer = BlindIndexer(two_versions())
    first = indexer.index("email", "ada@example.org")
    assert first == indexer.index("email", "ada@example.org")
    assert first.startswith("v2:")
    assert len(first) == 3 + 64
    assert first != indexer.index("phone", "ada@example.org")
    assert first != indexer.index("email", "bob@example.org")


def test_candidates_cover_every_version_current_first() -> None:
    keys = two_versions()
    candidates = BlindIndexer(keys).candidates("email", "ada@example.org")
    assert [c.split(":")[0] for c in candidates] == ["v2", "v1"]
    old = BlindIndexer(VersionedKeys("v1", keys.keys)).index("email", "ada@example.org")
    assert old == candidates[1]


def test_repr_hides_keys() -> None:
    keys = two_versions()
    for text in (repr(keys), repr(BlindIndexer(keys))):
        assert all(_b64(k) not in text and repr(k) not in text for k in keys.keys.values())


def test_new_key_set_parses() -> None:
    keys = VersionedKeys.parse(new_key_set(), "fresh")
    assert keys.current == "v1"
    assert len(keys.current_key) == 32


@pytest.mark.parametrize(
    "data",
    [
        {"current": "v2", "v1": _b64(b"k" * 32)},
        {"current": "v1", "v1": _b64(b"short")},
        {"current": "v1", "v1": "not base64!"},
        {"current": "v1", "v1": _b64(b"k" * 32), "old": _b64(b"k" * 32)},
    ],
    ids=["missing-current", "short-key", "not-base64", "bad-label"],
)
def test_malformed_key_sets_are_rejected(data: dict[str, str]) -> None:
    with pytest.raises(InvalidKeySet) as caught:
        VersionedKeys.parse(data, "moment/x")
    assert "moment/x" in str(caught.value)


def test_config_requires_credentials_for_its_method() -> None:
    with pytest.raises(ValueError, match="role_id_file"):
        VaultConfig()
    with pytest.raises(ValueError, match="kubernetes_role"):
        VaultConfig(auth_method="kubernetes")
    assert VaultConfig(auth_method="kubernetes", kubernetes_role="identity").url
