"""Session fixtures for a real OpenBao dev server, bootstrapped as `make run` does it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import pytest_asyncio

from moment_crypto import VaultClient, VaultConfig
from moment_devstack.processes import LOOPBACK, ManagedProcess, free_port, openbao
from moment_devstack.vault_bootstrap import ServiceCredentials, bootstrap_vault
from tests.support import audit_producers


@dataclass(frozen=True)
class VaultServer:
    """A running OpenBao dev server; `root_token` is for test set-up only."""

    url: str
    root_token: str
    process: ManagedProcess


VaultConfigFactory = Callable[[str], VaultConfig]


@pytest.fixture(scope="session")
def vault_server(run_dir: Path) -> Iterator[VaultServer]:
    root_token = secrets.token_urlsafe(24)
    process = openbao(run_dir, root_token)
    process.start()
    try:
        yield VaultServer(f"http://{LOOPBACK}:{process.port}", root_token, process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def vault_root(vault_server: VaultServer) -> Iterator[hvac.Client]:
    """An hvac client with the root token, for test set-up that services may not do."""
    client = hvac.Client(url=vault_server.url, token=vault_server.root_token)
    yield client
    client.adapter.close()


@pytest.fixture(scope="session")
def vault_bootstrap(
    vault_server: VaultServer, vault_root: hvac.Client, run_dir: Path
) -> dict[str, ServiceCredentials]:
    creds = bootstrap_vault(vault_server.url, vault_server.root_token, run_dir / "vault-creds")
    # The tests' own audit producer, for tests that write audit events directly.
    audit_producers.register(vault_root)
    return creds


@pytest.fixture(scope="session")
def vault_config_factory(
    vault_server: VaultServer, vault_bootstrap: dict[str, ServiceCredentials]
) -> VaultConfigFactory:
    def make(service: str) -> VaultConfig:
        creds = vault_bootstrap[service]
        return VaultConfig(
            url=vault_server.url,
            role_id_file=creds.role_id_file,
            secret_id_file=creds.secret_id_file,
        )

    return make


@pytest.fixture(scope="session")
def unreachable_vault_config(tmp_path_factory: pytest.TempPathFactory) -> VaultConfig:
    """A config for a loopback port nobody listens on, with credential files that exist."""
    creds = tmp_path_factory.mktemp("unreachable-vault")
    (creds / "role_id").write_text("unused")
    (creds / "secret_id").write_text("unused")
    return VaultConfig(
        url=f"http://{LOOPBACK}:{free_port()}",
        role_id_file=creds / "role_id",
        secret_id_file=creds / "secret_id",
        request_timeout_s=1.0,
    )


@pytest_asyncio.fixture(scope="session")
async def identity_vault(
    vault_config_factory: VaultConfigFactory,
) -> AsyncIterator[VaultClient]:
    client = VaultClient(vault_config_factory("identity"))
    await client.start()
    try:
        yield client
    finally:
        await client.stop()
