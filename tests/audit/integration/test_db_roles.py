"""The audit service runs under a PostgreSQL role that can append but never change or drop a
record: the append-only promise does not rest on the triggers alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.db_roles import READER, WRITER, apply_roles
from moment_audit.adapters.orm import audit_checkpoints, audit_records, metadata
from moment_audit.bootstrap import MIGRATIONS, build
from moment_audit.config import AuditSettings, CheckpointConfig
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_crypto import VaultConfig
from moment_devstack.processes import ManagedProcess
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_persistence.migrations import upgrade_to_head
from moment_telemetry.config import TelemetryConfig
from tests.support.audit_events import access
from tests.support.audit_producers import PRODUCERS, signed
from tests.support.postgres import PostgresDatabases
from tests.support.produce import publish
from tests.support.waiting import DEADLINE_S

EVENTS = 4
SETTLE_S = DEADLINE_S
# Refusals by privilege (SQLSTATE 42501), not by the triggers, which a role might otherwise
# switch off.
FORBIDDEN = [
    # Every query column is generated from the document: the document is what one would change.
    "UPDATE audit_records SET document = '{}'",
    "DELETE FROM audit_records",
    "TRUNCATE audit_records",
    "UPDATE audit_checkpoints SET signature = 'x'",
    "DELETE FROM audit_checkpoints",
    # Only the prune job may set a retention horizon.
    "INSERT INTO audit_retention_horizons DEFAULT VALUES",
    "ALTER TABLE audit_records DISABLE TRIGGER ALL",
    "DROP TABLE audit_records",
    "SET session_replication_role = replica",
]


class Store:
    def __init__(self, url: str, owner: AsyncEngine) -> None:
        self.url = url
        self.owner = owner
        self.logins: list[str] = []

    async def login(self, group: str) -> str:
        """A login role in `group` (trust auth on the test server: no password)."""
        name = f"audit_login_{uuid.uuid4().hex[:10]}"
        async with self.owner.begin() as connection:
            await connection.execute(text(f"CREATE ROLE {name} LOGIN IN ROLE {group}"))
        self.logins.append(name)
        return make_url(self.url).set(username=name).render_as_string(hide_password=False)


@pytest.fixture
async def store(postgres_database_factory: PostgresDatabases) -> AsyncIterator[Store]:
    url = await postgres_database_factory.create("audit_roles")
    await upgrade_to_head(url, MIGRATIONS)
    owner = create_async_engine(url, poolclass=NullPool)
    await apply_roles(owner, metadata)
    created = Store(url, owner)
    try:
        yield created
    finally:
        async with owner.begin() as connection:
            for name in created.logins:
                await connection.execute(text(f"DROP ROLE IF EXISTS {name}"))
        await owner.dispose()


def _settings(url: str, broker: ManagedProcess, vault: VaultConfig) -> AuditSettings:
    return AuditSettings(
        kafka=KafkaConfig(bootstrap_servers=f"127.0.0.1:{broker.port}", client_id="audit"),
        # Production: the owner migrates and grants, the service only connects.
        database=DatabaseConfig(url=SecretStr(url), migrate_on_start=False),
        vault=vault,
        checkpoints=CheckpointConfig(every_records=1, every_seconds=0.2),
        telemetry=TelemetryConfig(service_name="audit", log_format="console"),
        producers=PRODUCERS,
    )


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        records = await connection.scalar(select(func.count()).select_from(audit_records))
        signed = await connection.scalar(select(func.count()).select_from(audit_checkpoints))
    return int(records or 0), int(signed or 0)


async def _settled(engine: AsyncEngine) -> tuple[int, int]:
    counts = (0, 0)
    for _ in range(int(SETTLE_S / 0.1)):
        counts = await _counts(engine)
        if counts[0] >= EVENTS and counts[1] >= 1:
            break
        await asyncio.sleep(0.1)
    return counts


async def test_the_service_appends_and_signs_as_the_writer_role(
    store: Store,
    private_broker: ManagedProcess,
    vault_config_factory: Callable[[str], VaultConfig],
) -> None:
    url = await store.login(WRITER)
    service = build(_settings(url, private_broker, vault_config_factory("audit")))
    await service.start()
    try:
        events = [access(str(uuid.uuid4())) for _ in range(EVENTS)]
        envelopes = signed(
            *(Envelope.of(e, source="/test/roles", subject=e.subject_id) for e in events)
        )
        await publish(f"127.0.0.1:{private_broker.port}", topics.AUDIT_EVENTS, *envelopes)
        counts = await _settled(store.owner)
    finally:
        await service.stop()
    assert counts[0] == EVENTS, "every event ingested under the writer role"
    assert counts[1] >= 1, "checkpoints stored under the writer role"


@pytest.mark.parametrize("statement", FORBIDDEN)
async def test_the_writer_role_cannot_change_drop_or_unprotect_records(
    store: Store, statement: str
) -> None:
    engine = create_async_engine(await store.login(WRITER), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as refused:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()
    assert getattr(refused.value.orig, "sqlstate", None) == "42501", str(refused.value.orig)


async def test_the_reader_role_reads_and_writes_nothing(store: Store) -> None:
    engine = create_async_engine(await store.login(READER), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(select(func.count()).select_from(audit_records)) == 0
            with pytest.raises(DBAPIError) as refused:
                await connection.execute(text("INSERT INTO outbox DEFAULT VALUES"))
    finally:
        await engine.dispose()
    assert getattr(refused.value.orig, "sqlstate", None) == "42501"


async def test_roles_are_reapplied_idempotently(store: Store) -> None:
    # Every migration is followed by a re-grant; running it twice must change nothing.
    statements = await apply_roles(store.owner, metadata)
    assert any(
        "GRANT SELECT, INSERT ON TABLE audit_records TO moment_audit_writer" in s
        for s in statements
    )
