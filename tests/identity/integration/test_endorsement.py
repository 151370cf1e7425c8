"""Identity endorses its sealing key with its Vault-held signing key; a client that trusts that
signing key seals only to a key identity endorsed, across rotations, and refuses a forgery."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from moment_auth.tokens import public_keys_by_kid
from moment_client.client import RequestClient
from moment_client.identity import IdentityClient, UntrustedSealingKey
from moment_crypto.config import VaultConfig
from moment_crypto.vault import VaultClient
from tests.identity.integration.test_registration import fields
from tests.support.suite import Suite

KEY = "identity-token-signing"


async def storefront_trust(vault_config_factory: Callable[[str], VaultConfig]):  # type: ignore[no-untyped-def]
    """What a storefront does at start-up: read identity's public signing keys with its AppRole."""
    async with VaultClient(vault_config_factory("storefront")) as vault:
        return public_keys_by_kid(KEY, await vault.transit_public_keys(KEY))


async def test_an_endorsed_key_is_accepted_and_survives_rotation(
    suite: Suite,
    requests_client: RequestClient,
    vault_config_factory: Callable[[str], VaultConfig],
) -> None:
    client = IdentityClient(
        requests_client, trusted_signing_keys=await storefront_trust(vault_config_factory)
    )
    key = await client.sealing_key()
    assert key is not None
    await suite.identity.handlers().crypto.opener.rotate()
    accepted = await client.register(fields(uuid.uuid4().hex[:10]))
    assert accepted.status == "active"


async def test_a_key_endorsed_by_anyone_else_is_refused(requests_client: RequestClient) -> None:
    stranger = Ed25519PrivateKey.generate().public_key()
    client = IdentityClient(requests_client, trusted_signing_keys={f"{KEY}:v1": stranger})
    with pytest.raises(UntrustedSealingKey):
        await client.sealing_key()
