"""Envelope encryption end to end: per-subject keys wrapped by Transit, cache, erasure."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import hvac
import pytest
import pytest_asyncio

from moment_crypto import (
    DecryptionFailed,
    FieldCipher,
    KeyCache,
    KeyDestroyed,
    SubjectKeyring,
    VaultClient,
    VaultConfig,
    WrappedKey,
)
from moment_devstack.vault_bootstrap import SUBJECT_KEYS
from tests.support.vault import VaultServer


def keyring(vault: VaultClient) -> SubjectKeyring:
    return SubjectKeyring(vault, SUBJECT_KEYS, KeyCache(max_size=1000, ttl_s=60))


async def test_field_round_trip_through_a_wrapped_key(identity_vault: VaultClient) -> None:
    writer = keyring(identity_vault)
    key = await writer.new_key("subject-1")
    token = FieldCipher().encrypt(key.plaintext, "subject-1", "name", key.version, "ليلى")
    # A fresh process: only the wrapped key is known.
    reader = keyring(identity_vault)
    plaintext = await reader.unwrap("subject-1", key.version, key.wrapped)
    assert FieldCipher().decrypt(plaintext, "subject-1", "name", key.version, token) == "ليلى"


async def test_cache_hit_makes_no_vault_call(identity_vault: VaultClient) -> None:
    ring = keyring(identity_vault)
    key = await ring.new_key("subject-2")
    before = identity_vault.calls
    for _ in range(1000):
        assert await ring.unwrap("subject-2", 1, key.wrapped) == key.plaintext
    assert identity_vault.calls == before


async def test_unwrap_many_batches_the_misses(identity_vault: VaultClient) -> None:
    writer = keyring(identity_vault)
    keys = [await writer.new_key(f"many-{i}") for i in range(5)]
    reader = keyring(identity_vault)
    await reader.unwrap(keys[0].subject_id, 1, keys[0].wrapped)
    before = identity_vault.calls
    items = [WrappedKey(k.subject_id, k.version, k.wrapped) for k in keys]
    found = await reader.unwrap_many([*items, items[1]])
    assert identity_vault.calls - before == 1
    assert found == {(k.subject_id, 1): k.plaintext for k in keys}
    assert await reader.unwrap_many(items) == found
    assert identity_vault.calls - before == 1


async def test_forget_evicts_every_version(identity_vault: VaultClient) -> None:
    ring = keyring(identity_vault)
    await ring.new_key("subject-3", version=1)
    await ring.new_key("subject-3", version=2)
    ring.forget("subject-3")
    assert ring.cache.get("subject-3", 1) is None
    assert ring.cache.get("subject-3", 2) is None


async def test_tampered_wrapped_key_fails(identity_vault: VaultClient) -> None:
    key = await keyring(identity_vault).new_key("subject-4")
    raw = bytearray(base64.b64decode(key.wrapped.removeprefix("vault:v1:")))
    raw[-1] ^= 1
    tampered = "vault:v1:" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DecryptionFailed):
        await keyring(identity_vault).unwrap("subject-4", 1, tampered)


@pytest_asyncio.fixture
async def root_vault(vault_server: VaultServer, tmp_path: Path) -> AsyncIterator[VaultClient]:
    token_file = tmp_path / "token"
    token_file.write_text(vault_server.root_token)
    config = VaultConfig(url=vault_server.url, auth_method="token", token_file=token_file)
    async with VaultClient(config) as client:
        yield client


async def test_retired_wrapping_key_version_is_key_destroyed(
    root_vault: VaultClient, vault_root: hvac.Client
) -> None:
    vault_root.secrets.transit.create_key("shred-test", key_type="aes256-gcm96")
    _, old = await root_vault.generate_data_key("shred-test")
    vault_root.secrets.transit.rotate_key("shred-test")
    plaintext, new = await root_vault.generate_data_key("shred-test")
    vault_root.secrets.transit.update_key_configuration("shred-test", min_decryption_version=2)
    assert await root_vault.decrypt_data_keys("shred-test", [new]) == [plaintext]
    for batch in ([old], [new, old]):
        with pytest.raises(KeyDestroyed) as caught:
            await root_vault.decrypt_data_keys("shred-test", batch)
        assert base64.b64encode(plaintext).decode() not in str(caught.value)
