"""VaultClient against a real OpenBao: login, least privilege, Transit, KV, renewal, outages."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import hvac
import pytest

from moment_crypto import (
    VaultClient,
    VaultConfig,
    VaultPermissionDenied,
    VaultRequestFailed,
    VaultUnavailable,
    VersionedKeys,
)
from moment_devstack.vault_bootstrap import (
    AUDIT_CHECKPOINT_KEY,
    AUDIT_PRODUCERS_PATH,
    SUBJECT_KEYS,
    TOKEN_SIGNING_KEY,
    ServiceCredentials,
    bootstrap_vault,
    policy_name,
)
from tests.support.vault import VaultConfigFactory, VaultServer


async def test_approle_login_and_health(vault_config_factory: VaultConfigFactory) -> None:
    async with VaultClient(vault_config_factory("identity")) as client:
        assert client.logins == 1
        assert await client.health()
        assert "secret" not in repr(client).lower()


async def test_bad_secret_id_is_permission_denied(
    vault_config_factory: VaultConfigFactory, tmp_path: Path
) -> None:
    config = vault_config_factory("identity")
    wrong = tmp_path / "secret_id"
    wrong.write_text("00000000-0000-0000-0000-000000000000")
    client = VaultClient(config.model_copy(update={"secret_id_file": wrong}))
    with pytest.raises(VaultPermissionDenied, match="approle login"):
        await client.login()


async def test_credential_files_are_private(
    vault_bootstrap: dict[str, ServiceCredentials],
) -> None:
    for creds in vault_bootstrap.values():
        for path in (creds.role_id_file, creds.secret_id_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_data_key_generate_and_unwrap(identity_vault: VaultClient) -> None:
    plaintext, wrapped = await identity_vault.generate_data_key(SUBJECT_KEYS)
    assert len(plaintext) == 32
    assert wrapped.startswith("vault:v1:")
    assert await identity_vault.decrypt_data_keys(SUBJECT_KEYS, [wrapped]) == [plaintext]


async def test_batch_unwrap_is_chunked(
    identity_vault: VaultClient, vault_root: hvac.Client
) -> None:
    keys = [os.urandom(32) for _ in range(600)]
    wrapped: list[str] = []
    for start in (0, 300):
        response = vault_root.secrets.transit.encrypt_data(
            SUBJECT_KEYS,
            batch_input=[
                {"plaintext": base64.b64encode(k).decode()} for k in keys[start : start + 300]
            ],
        )
        wrapped += [r["ciphertext"] for r in response["data"]["batch_results"]]
    before = identity_vault.calls
    assert await identity_vault.decrypt_data_keys(SUBJECT_KEYS, wrapped) == keys
    assert identity_vault.calls - before == 2


async def test_least_privilege(vault_config_factory: VaultConfigFactory) -> None:
    async with (
        VaultClient(vault_config_factory("consent")) as consent,
        VaultClient(vault_config_factory("audit")) as audit,
        VaultClient(vault_config_factory("identity")) as identity,
    ):
        with pytest.raises(VaultPermissionDenied):
            await consent.generate_data_key(SUBJECT_KEYS)
        with pytest.raises(VaultPermissionDenied):
            await consent.read_kv("moment/identity/blind-index")
        with pytest.raises(VaultPermissionDenied):
            await audit.generate_data_key(SUBJECT_KEYS)
        with pytest.raises(VaultPermissionDenied):
            await identity.sign(AUDIT_CHECKPOINT_KEY, b"checkpoint")
        assert await audit.verify(
            AUDIT_CHECKPOINT_KEY, b"cp", await audit.sign(AUDIT_CHECKPOINT_KEY, b"cp")
        )


async def test_sign_and_verify(identity_vault: VaultClient) -> None:
    signature = await identity_vault.sign(TOKEN_SIGNING_KEY, b"header.payload")
    assert signature.startswith("vault:v1:")
    assert await identity_vault.verify(TOKEN_SIGNING_KEY, b"header.payload", signature)
    assert not await identity_vault.verify(TOKEN_SIGNING_KEY, b"header.payloaD", signature)
    assert not await identity_vault.verify(TOKEN_SIGNING_KEY, b"header.payload", "garbage")


async def test_kv_read_and_missing_path(identity_vault: VaultClient) -> None:
    data = await identity_vault.read_kv("moment/identity/pepper")
    assert data["current"] == "v1"
    with pytest.raises(VaultRequestFailed) as caught:
        await identity_vault.read_kv("moment/identity/absent")
    assert caught.value.status == 404


async def test_relogin_after_token_revoked(
    vault_config_factory: VaultConfigFactory, vault_root: hvac.Client
) -> None:
    client = VaultClient(vault_config_factory("identity"))
    await client.login()
    vault_root.auth.token.revoke(client._hvac.token)
    plaintext, _ = await client.generate_data_key(SUBJECT_KEYS)
    assert len(plaintext) == 32
    assert client.logins == 2
    await client.stop()


async def test_token_file_auth(vault_server: VaultServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(vault_server.root_token + "\n")
    config = VaultConfig(url=vault_server.url, auth_method="token", token_file=token_file)
    async with VaultClient(config) as client:
        assert len((await client.generate_data_key(SUBJECT_KEYS))[0]) == 32


@pytest.mark.slow
async def test_background_renewal_keeps_the_token(
    vault_config_factory: VaultConfigFactory, vault_root: hvac.Client, tmp_path: Path
) -> None:
    vault_root.auth.approle.create_or_update_approle(
        "short-lived", token_policies=[policy_name("identity")], token_ttl="3s", token_max_ttl="1h"
    )
    role_id = vault_root.auth.approle.read_role_id("short-lived")["data"]["role_id"]
    secret_id = vault_root.auth.approle.generate_secret_id("short-lived")["data"]["secret_id"]
    (tmp_path / "role_id").write_text(role_id)
    (tmp_path / "secret_id").write_text(secret_id)
    config = vault_config_factory("identity").model_copy(
        update={"role_id_file": tmp_path / "role_id", "secret_id_file": tmp_path / "secret_id"}
    )
    async with VaultClient(config) as client:
        await asyncio.sleep(3.5)
        await client.generate_data_key(SUBJECT_KEYS)
        # Without renewal the 3 s token would have lapsed and forced a second login.
        assert client.logins == 1
        assert client.calls >= 3


async def test_unreachable_vault_is_a_clear_typed_error(
    unreachable_vault_config: VaultConfig,
) -> None:
    client = VaultClient(unreachable_vault_config)
    assert not await client.health()
    with pytest.raises(VaultUnavailable) as caught:
        await client.generate_data_key(SUBJECT_KEYS)
    error = caught.value
    assert type(error) is VaultUnavailable
    assert unreachable_vault_config.url in str(error)
    assert "unreachable" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    await client.stop()


async def test_bootstrap_is_idempotent(
    vault_server: VaultServer, vault_root: hvac.Client, tmp_path: Path
) -> None:
    def blind_index_keys() -> dict[str, str]:
        response = vault_root.secrets.kv.v2.read_secret_version(
            "moment/identity/blind-index", raise_on_deleted_version=True
        )
        return dict(response["data"]["data"])

    before = blind_index_keys()
    creds = bootstrap_vault(vault_server.url, vault_server.root_token, tmp_path, ["consent"])
    assert set(creds) == {"consent"}
    assert creds["consent"].secret_id_file.read_text()
    assert blind_index_keys() == before


async def test_audit_producer_keys_are_read_by_their_producer_and_audit_only(
    vault_config_factory: VaultConfigFactory,
) -> None:
    """Whoever can read a producer's MAC key can write the audit trail as that producer."""
    identity_key = f"{AUDIT_PRODUCERS_PATH}/identity"
    tests_key = f"{AUDIT_PRODUCERS_PATH}/tests"
    async with (
        VaultClient(vault_config_factory("consent")) as consent,
        VaultClient(vault_config_factory("storefront")) as storefront,
        VaultClient(vault_config_factory("audit")) as audit,
        VaultClient(vault_config_factory("identity")) as identity,
    ):
        for outsider in (consent, storefront):
            with pytest.raises(VaultPermissionDenied):
                await outsider.read_kv(identity_key)
        with pytest.raises(VaultPermissionDenied):
            await identity.read_kv(tests_key)
        with pytest.raises(VaultPermissionDenied):
            await identity.write_kv(identity_key, {"current": "v1", "v1": "AAAA"})
        with pytest.raises(VaultPermissionDenied):
            await audit.write_kv(identity_key, {"current": "v1", "v1": "AAAA"})
        own = await VersionedKeys.load(identity, identity_key)
        assert (await VersionedKeys.load(audit, identity_key)).keys == own.keys
        # Another test may have rotated it: any current version will do.
        assert (await VersionedKeys.load(audit, tests_key)).current_key
