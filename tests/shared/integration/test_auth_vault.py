"""Tokens signed by real OpenBao Transit, verified offline with any service's credentials."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import hvac
import pytest
import pytest_asyncio

from moment_auth import (
    Principal,
    Role,
    ServiceAccount,
    TokenSigner,
    TokenUnknownKey,
    TokenVerifier,
    jws,
)
from moment_crypto import VaultClient, VaultConfig, VaultPermissionDenied
from moment_devstack.vault_bootstrap import TOKEN_SIGNING_KEY
from tests.support.vault import VaultConfigFactory, VaultServer

SUBJECT = "5f0e2d1c-8b7a-4c3d-9e2f-1a0b9c8d7e6f"


def kid_of(token: str) -> str:
    return str(json.loads(jws.b64url_decode(token.split(".", maxsplit=1)[0]))["kid"])


@pytest_asyncio.fixture(scope="session")
async def audit_vault(vault_config_factory: VaultConfigFactory) -> AsyncIterator[VaultClient]:
    client = VaultClient(vault_config_factory("audit"))
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def test_issue_in_vault_verify_offline_as_audit(
    identity_vault: VaultClient, audit_vault: VaultClient
) -> None:
    signer = TokenSigner(identity_vault)
    issued = await signer.issue(Principal.customer(SUBJECT, session_version=1))
    verifier = await TokenVerifier.from_vault(audit_vault)
    verified = await verifier.verify(issued.token)
    assert verified.principal == Principal.customer(SUBJECT, session_version=1)
    newest = max(await audit_vault.transit_public_keys(TOKEN_SIGNING_KEY))
    assert kid_of(issued.token) == f"{TOKEN_SIGNING_KEY}:v{newest}"


async def test_transit_agrees_with_the_local_signature(identity_vault: VaultClient) -> None:
    issued = await TokenSigner(identity_vault).issue(Principal.service(ServiceAccount.CONSENT))
    header, payload, signature = issued.token.split(".")
    version = kid_of(issued.token).rsplit(":v", 1)[1]
    transit_form = f"vault:v{version}:{base64.b64encode(jws.b64url_decode(signature)).decode()}"
    signed = f"{header}.{payload}".encode()
    assert await identity_vault.verify(TOKEN_SIGNING_KEY, signed, transit_form)


async def test_verification_makes_no_vault_calls(
    identity_vault: VaultClient, audit_vault: VaultClient
) -> None:
    signer = TokenSigner(identity_vault)
    staff = Principal.staff("staff-0007", [Role.SUPPORT_OPERATOR])
    tokens = [(await signer.issue(staff)).token for _ in range(5)]
    verifier = await TokenVerifier.from_vault(audit_vault)
    before = audit_vault.calls
    for _ in range(100):
        for token in tokens:
            assert (await verifier.verify(token)).principal == staff
    assert audit_vault.calls == before
    assert verifier.refreshes == 0


async def test_every_service_reads_public_keys_only(
    vault_config_factory: VaultConfigFactory,
) -> None:
    for service in ("consent", "audit"):
        async with VaultClient(vault_config_factory(service)) as client:
            keys = await client.transit_public_keys(TOKEN_SIGNING_KEY)
            assert keys
            assert all(len(key) == 32 for key in keys.values())
            with pytest.raises(VaultPermissionDenied):
                await client.sign(TOKEN_SIGNING_KEY, b"forged")


@pytest_asyncio.fixture
async def root_vault(vault_server: VaultServer, tmp_path: Path) -> AsyncIterator[VaultClient]:
    """A root-token client, for a throwaway key: rotating the shared one would affect others."""
    token_file = tmp_path / "token"
    token_file.write_text(vault_server.root_token)
    config = VaultConfig(url=vault_server.url, auth_method="token", token_file=token_file)
    async with VaultClient(config) as client:
        yield client


async def test_key_rotation(root_vault: VaultClient, vault_root: hvac.Client) -> None:
    key = f"auth-rotation-{uuid.uuid4().hex[:8]}"
    vault_root.secrets.transit.create_key(key, key_type="ed25519", mount_point="transit")
    signer = TokenSigner(root_vault, key)
    verifier = await TokenVerifier.from_vault(root_vault, key)
    old = (await signer.issue(Principal.customer(SUBJECT))).token
    assert kid_of(old) == f"{key}:v1"

    vault_root.secrets.transit.rotate_key(name=key, mount_point="transit")
    new = (await signer.issue(Principal.customer(SUBJECT))).token
    assert kid_of(new) == f"{key}:v2"

    calls = root_vault.calls
    await verifier.verify(new)  # unknown kid: one reload of the public keys
    await verifier.verify(old)
    await verifier.verify(new)
    assert (verifier.refreshes, root_vault.calls - calls) == (1, 1)

    # Retiring v1 in Transit retires it for offline verifiers at their next reload.
    vault_root.secrets.transit.update_key_configuration(
        key, min_decryption_version=2, mount_point="transit"
    )
    await verifier.refresh()
    with pytest.raises(TokenUnknownKey):
        await verifier.verify(old)
    await verifier.verify(new)
