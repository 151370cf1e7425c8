"""The infrastructure one benchmark run needs: Tansu, OpenBao, and PostgreSQL (or SQLite).

Everything is started on loopback with fresh state and stopped again when the block ends, whether
the run succeeded or not. Each piece registers its own clean-up as soon as it is up, so a failure
half-way through start-up still stops what was already running.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from benchmarks.context import BenchContext, Scale
from moment_contracts.topics import CORE_TOPICS
from moment_crypto.config import VaultConfig
from moment_devstack.postgres import (
    DEFAULT_ADMIN_URL,
    PostgresUnavailable,
    check_postgres,
    create_database,
    database_url,
    drop_database,
    validate_database_name,
)
from moment_devstack.processes import LOOPBACK, ManagedProcess, openbao, tansu
from moment_devstack.vault_bootstrap import ServiceCredentials, bootstrap_vault
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig


class BenchDatabases:
    """Fresh databases for one run: on PostgreSQL when it answers, else SQLite files."""

    def __init__(self, admin_url: str | None, sqlite_dir: Path) -> None:
        self.admin_url = admin_url
        self._sqlite_dir = sqlite_dir
        self._created: list[str] = []

    @property
    def dialect(self) -> str:
        return "postgresql" if self.admin_url else "sqlite"

    async def create(self, prefix: str) -> str:
        name = validate_database_name(f"moment_{prefix}_{uuid.uuid4().hex[:10]}")
        if self.admin_url is None:
            return f"sqlite+aiosqlite:///{self._sqlite_dir / f'{name}.db'}"
        await create_database(self.admin_url, name)
        self._created.append(name)
        return database_url(self.admin_url, name)

    async def drop_all(self) -> None:
        names, self._created = self._created, []
        if self.admin_url is not None:
            for name in names:
                await drop_database(self.admin_url, name)


async def _postgres_admin_url(admin_url: str, notes: list[str]) -> str | None:
    try:
        await check_postgres(admin_url)
    except PostgresUnavailable as exc:
        notes.append(f"PostgreSQL unreachable, database figures are on SQLite: {exc}")
        return None
    return admin_url


async def _start(process: ManagedProcess, stack: AsyncExitStack) -> ManagedProcess:
    # Registered before start(): a process that fails to come up is still stopped.
    stack.callback(process.stop)
    await asyncio.to_thread(process.start)
    return process


def _vault_configs(url: str, creds: dict[str, ServiceCredentials]) -> dict[str, VaultConfig]:
    return {
        name: VaultConfig(url=url, role_id_file=c.role_id_file, secret_id_file=c.secret_id_file)
        for name, c in creds.items()
    }


@asynccontextmanager
async def bench_stack(
    run_dir: Path, scale: Scale, admin_url: str = DEFAULT_ADMIN_URL
) -> AsyncIterator[BenchContext]:
    """Start the infrastructure, yield a context over it, and stop everything afterwards."""
    notes: list[str] = []
    async with AsyncExitStack() as infra:
        broker = await _start(tansu(run_dir), infra)
        root_token = secrets.token_urlsafe(24)
        vault = await _start(openbao(run_dir, root_token), infra)
        vault_url = f"http://{LOOPBACK}:{vault.port}"
        creds = await asyncio.to_thread(
            bootstrap_vault, vault_url, root_token, run_dir / "vault-creds"
        )
        configs = _vault_configs(vault_url, creds)
        kafka = KafkaConfig(bootstrap_servers=f"{LOOPBACK}:{broker.port}", client_id="bench")
        await ensure_topics(kafka, CORE_TOPICS)
        databases = BenchDatabases(await _postgres_admin_url(admin_url, notes), run_dir)
        infra.push_async_callback(databases.drop_all)
        async with AsyncExitStack() as services:
            context = BenchContext(
                kafka=kafka,
                vault=configs.__getitem__,
                databases=databases,
                scale=scale,
                stack=services,
            )
            context.notes.extend(notes)
            context.environment = {
                "broker": "tansu",
                "vault": "openbao",
                "database": databases.dialect,
            }
            yield context
