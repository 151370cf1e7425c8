"""Blind indexes with keys read from Vault KV: stable across loads, versioned for rotation."""

from __future__ import annotations

import base64
import os

import hvac

from moment_crypto import BlindIndexer, VaultClient
from moment_devstack.vault_bootstrap import BLIND_INDEX_PATH


async def test_index_is_stable_across_loads_and_local(identity_vault: VaultClient) -> None:
    first = await BlindIndexer.load(identity_vault, BLIND_INDEX_PATH)
    second = await BlindIndexer.load(identity_vault, BLIND_INDEX_PATH)
    before = identity_vault.calls
    value = first.index("email", "ada@example.org")
    assert value == second.index("email", "ada@example.org")
    assert value.startswith("v1:")
    assert identity_vault.calls == before


async def test_rotation_keeps_old_indexes_findable(
    identity_vault: VaultClient, vault_root: hvac.Client
) -> None:
    path = "moment/identity/blind-index-rotation-test"
    v1 = base64.b64encode(os.urandom(32)).decode()
    vault_root.secrets.kv.v2.create_or_update_secret(path, secret={"current": "v1", "v1": v1})
    stored = (await BlindIndexer.load(identity_vault, path)).index("email", "ada@example.org")
    v2 = base64.b64encode(os.urandom(32)).decode()
    vault_root.secrets.kv.v2.create_or_update_secret(
        path, secret={"current": "v2", "v1": v1, "v2": v2}
    )
    rotated = await BlindIndexer.load(identity_vault, path)
    assert rotated.index("email", "ada@example.org").startswith("v2:")
    assert stored in rotated.candidates("email", "ada@example.org")
