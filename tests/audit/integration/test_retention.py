"""Retention on real PostgreSQL and SQLite, with checkpoints and horizons signed by a real OpenBao.

Each store holds two partitions: seq 1-6 signed at seq 6 before the cut-off, seq 7-12 signed at
seq 12 after it. `moment-audit prune --before <cut-off>` must remove seq 1-6 and nothing else,
and `moment-audit verify` must still pass, starting from the horizon; a DBA who deletes more, or
forges a horizon to excuse it, must be named.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.db_roles import RETENTION, apply_roles
from moment_audit.adapters.orm import (
    audit_checkpoints,
    audit_records,
    audit_retention_horizons,
    metadata,
)
from moment_audit.bootstrap import MIGRATIONS, build
from moment_audit.config import AuditSettings, CheckpointConfig
from moment_audit.domain.retention import Horizon, horizon_payload
from moment_audit.service.verify import offline_signature_check
from moment_contracts import topics
from moment_contracts.audit_chain import RetentionApplied
from moment_crypto import VaultClient, VaultConfig
from moment_devstack.processes import ManagedProcess
from moment_devstack.vault_bootstrap import ServiceCredentials
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_persistence.errors import PersistenceError
from moment_persistence.migrations import upgrade_to_head
from moment_telemetry.config import TelemetryConfig
from tests.audit.integration.test_tamper import DIALECTS, PER_PARTITION, Store, environment
from tests.support.audit_store import as_dba
from tests.support.kafka import header, read_topic
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.vault import VaultServer

KEPT = PER_PARTITION  # seq 7-12 of each partition are younger than the cut-off
REFUSED = (PersistenceError, DBAPIError)


@pytest.fixture(scope="module")
def audit_credentials(vault_bootstrap: dict[str, ServiceCredentials]) -> ServiceCredentials:
    return vault_bootstrap["audit"]


async def run_audit(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "moment-audit"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    assert process.returncode != 2, err.decode()
    return process.returncode, out.decode()


class AgedStore(Store):
    """A store whose older half was signed before `cutoff` and younger half after it."""

    cutoff: datetime

    async def build(self, vault: VaultClient) -> None:
        await self.fill(vault)
        # Clock readings either side must differ, or "before the cut-off" is ambiguous.
        await asyncio.sleep(0.01)
        self.cutoff = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await self.fill(vault)

    async def rows(self) -> dict[tuple[int, int], str]:
        """(partition, seq) -> record_hash of every stored record."""
        async with self.uow() as uow:
            query = select(
                audit_records.c.chain_partition, audit_records.c.seq, audit_records.c.record_hash
            )
            return {(p, s): h for p, s, h in await uow.session.execute(query)}

    async def count(self, table: Any) -> int:
        async with self.uow() as uow:
            return int(await uow.session.scalar(select(func.count()).select_from(table)) or 0)

    async def write(self, statement: Any) -> None:
        """What the service's own role could do."""
        async with self.uow() as uow:
            await uow.session.execute(text(statement) if isinstance(statement, str) else statement)
            await uow.commit()

    async def dba(self, *statements: Any) -> None:
        """What a DBA could do with every trigger out of the way."""
        await as_dba(self.database.engine, *statements)


@pytest.fixture(params=DIALECTS)
async def aged(
    request: pytest.FixtureRequest,
    postgres_database_factory: PostgresDatabases,
    tmp_path: Path,
    vault_config_factory: Callable[[str], VaultConfig],
) -> AsyncIterator[AgedStore]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "retention")
    await upgrade_to_head(url, MIGRATIONS)
    built = AgedStore(url)
    async with VaultClient(vault_config_factory("audit")) as vault:
        await built.build(vault)
    yield built
    await built.database.dispose()


@pytest.fixture
def env(
    aged: AgedStore, vault_server: VaultServer, audit_credentials: ServiceCredentials
) -> dict[str, str]:
    return environment(vault_server, audit_credentials, aged.url)


async def prune(aged: AgedStore, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out = await run_audit(env, "prune", "--before", aged.cutoff.isoformat(), "--json", *args)
    return code, json.loads(out)


def outcomes(report: dict[str, Any]) -> list[tuple[int, int, int | None, int, int, str]]:
    return [
        (p["partition"], p["after_seq"], p["horizon_seq"], p["records"], p["deleted"], p["status"])
        for p in report["partitions"]
    ]


async def test_prune_removes_only_what_is_older_and_the_chains_still_verify(
    aged: AgedStore, env: dict[str, str]
) -> None:
    before = await aged.rows()
    code, report = await prune(aged, env)
    assert (code, report["ok"], report["records"], report["deleted"]) == (0, True, 12, 12)
    assert outcomes(report) == [(0, 0, 6, 6, 6, "pruned"), (1, 0, 6, 6, 6, "pruned")]
    assert await aged.rows() == {key: h for key, h in before.items() if key[1] > PER_PARTITION}
    code, out = await run_audit(env, "verify")
    lines = out.splitlines()
    assert (code, lines[-1]) == (0, f"{KEPT * 2} records, 4 checkpoints: verified")
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "horizon: partition 0 starts after seq 6",
        "horizon: partition 1 starts after seq 6",
    ]
    code, out = await run_audit(env, "verify", "--json")
    horizons = json.loads(out)["horizons"]
    assert [(h["partition"], h["seq"], h["records"]) for h in horizons] == [(0, 6, 6), (1, 6, 6)]
    assert datetime.fromisoformat(horizons[0]["cutoff"]) == aged.cutoff


async def test_prune_is_idempotent(aged: AgedStore, env: dict[str, str]) -> None:
    assert (await prune(aged, env))[0] == 0
    code, report = await prune(aged, env)
    assert (code, report["records"], report["deleted"]) == (0, 0, 0)
    assert outcomes(report) == [(p, 6, None, 0, 0, "nothing to prune") for p in (0, 1)]
    assert await aged.count(audit_records) == KEPT * 2
    assert await aged.count(audit_retention_horizons) == 2


async def test_a_dry_run_changes_nothing(aged: AgedStore, env: dict[str, str]) -> None:
    code, report = await prune(aged, env, "--dry-run")
    assert (code, report["dry_run"]) == (0, True)
    assert outcomes(report) == [(0, 0, 6, 6, 6, "would prune"), (1, 0, 6, 6, 6, "would prune")]
    assert await aged.count(audit_records) == PER_PARTITION * 4
    assert await aged.count(audit_retention_horizons) == 0


async def test_the_retention_period_keeps_young_records(
    aged: AgedStore, env: dict[str, str]
) -> None:
    for args in (["--older-than", "1d"], []):  # [] is the default, 400 days
        code, out = await run_audit(env, "prune", *args)
        assert code == 0
        assert "0 records pruned" in out
    assert await aged.count(audit_records) == PER_PARTITION * 4


async def test_deletes_above_the_horizon_are_still_rejected(
    aged: AgedStore, env: dict[str, str]
) -> None:
    assert (await prune(aged, env))[0] == 0
    statements = [
        "DELETE FROM audit_records",
        f"DELETE FROM audit_records WHERE chain_partition = 0 AND seq = {PER_PARTITION + 2}",
        "UPDATE audit_records SET record_hash = record_hash",
        "UPDATE audit_retention_horizons SET seq = seq + 6",
        "DELETE FROM audit_retention_horizons",
    ]
    if aged.url.startswith("postgresql"):
        statements += ["TRUNCATE audit_records", "TRUNCATE audit_retention_horizons"]
    for statement in statements:
        with pytest.raises(REFUSED):
            await aged.write(statement)
    assert await aged.count(audit_records) == KEPT * 2
    assert await aged.count(audit_retention_horizons) == 2


async def _horizon_row(aged: AgedStore, partition: int, seq: int, **changes: Any) -> Any:
    async with aged.uow() as uow:
        checkpoint = (
            await uow.session.execute(
                select(audit_checkpoints).where(
                    audit_checkpoints.c.chain_partition == partition,
                    audit_checkpoints.c.seq == seq,
                )
            )
        ).first()
    values = {
        "chain_partition": partition,
        "seq": seq,
        "hash": checkpoint.hash if checkpoint else "ab" * 32,
        "cutoff": aged.cutoff,
        "pruned_at": aged.cutoff,
        "records": seq,
        "signature": "vault:v1:" + "A" * 88,
        **changes,
    }
    return insert(audit_retention_horizons).values(values)


async def test_horizons_rest_on_checkpoints_and_only_move_forward(
    aged: AgedStore, env: dict[str, str]
) -> None:
    with pytest.raises(REFUSED, match="no checkpoint has its seq and hash"):
        await aged.write(await _horizon_row(aged, 0, 5))
    with pytest.raises(REFUSED, match="no checkpoint has its seq and hash"):
        await aged.write(await _horizon_row(aged, 0, 6, hash="cd" * 32))
    assert (await prune(aged, env))[0] == 0
    with pytest.raises(REFUSED, match="horizons only move forward"):
        await aged.write(await _horizon_row(aged, 0, 6))


async def test_a_dba_deleting_above_the_horizon_is_named(
    aged: AgedStore, env: dict[str, str]
) -> None:
    assert (await prune(aged, env))[0] == 0
    await aged.dba("DELETE FROM audit_records WHERE chain_partition = 0 AND seq = 8")
    code, out = await run_audit(env, "verify")
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("partition")] == [
        "partition 0 seq 8: DELETED"
    ]


async def test_a_horizon_with_a_forged_signature_is_named(
    aged: AgedStore, env: dict[str, str]
) -> None:
    # The service's own role could insert this one: it rests on a real checkpoint, and the
    # DELETE trigger then lets the records below it go. Only its signature gives it away.
    assert (await prune(aged, env))[0] == 0
    await aged.write(await _horizon_row(aged, 1, 12))
    await aged.write("DELETE FROM audit_records WHERE chain_partition = 1")
    code, out = await run_audit(env, "verify")
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("partition")] == [
        "partition 1 seq 7: TRUNCATED (chain ends at seq 6, signed up to seq 12)",
        "partition 1 seq 12: BAD HORIZON (its signature fails)",
    ]


async def test_a_horizon_without_a_checkpoint_is_named(
    aged: AgedStore, env: dict[str, str]
) -> None:
    assert (await prune(aged, env))[0] == 0
    await aged.dba(
        await _horizon_row(aged, 0, 9),
        "DELETE FROM audit_records WHERE chain_partition = 0 AND seq <= 9",
    )
    code, out = await run_audit(env, "verify")
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("partition")] == [
        "partition 0 seq 7: DELETED",
        "partition 0 seq 8: DELETED",
        "partition 0 seq 9: BAD HORIZON (no checkpoint at this seq)",
        "partition 0 seq 9: DELETED",
    ]


async def test_deleting_the_horizon_itself_shows_everything_below_it_deleted(
    aged: AgedStore, env: dict[str, str]
) -> None:
    assert (await prune(aged, env))[0] == 0
    await aged.dba("DELETE FROM audit_retention_horizons WHERE chain_partition = 0")
    code, out = await run_audit(env, "verify")
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("partition")] == [
        f"partition 0 seq {seq}: DELETED" for seq in range(1, 7)
    ]


async def test_prune_refuses_a_partition_whose_chain_does_not_verify(
    aged: AgedStore, env: dict[str, str]
) -> None:
    await aged.dba(
        "UPDATE audit_records SET record_hash = 'ab' || substr(record_hash, 3) "
        "WHERE chain_partition = 0 AND seq = 3"
    )
    code, report = await prune(aged, env)
    assert (code, report["ok"]) == (1, False)
    refused, pruned = report["partitions"]
    assert (refused["status"], refused["deleted"], pruned["status"]) == ("refused", 0, "pruned")
    assert {f["finding"] for f in refused["findings"]} >= {"MODIFIED"}
    assert await aged.count(audit_retention_horizons) == 1


def _service_settings(url: str, broker: ManagedProcess, vault: VaultConfig) -> AuditSettings:
    return AuditSettings(
        kafka=KafkaConfig(bootstrap_servers=f"127.0.0.1:{broker.port}", client_id="audit"),
        database=DatabaseConfig(url=SecretStr(url), migrate_on_start=False),
        vault=vault,
        telemetry=TelemetryConfig(service_name="audit", log_format="console"),
    )


async def _login(owner: AsyncEngine, group: str) -> str:
    name = f"audit_prune_{uuid.uuid4().hex[:10]}"
    async with owner.begin() as connection:
        await connection.execute(text(f"CREATE ROLE {name} LOGIN IN ROLE {group}"))
    return name


async def test_the_prune_job_announces_its_horizons_on_audit_checkpoints(
    postgres_database_factory: PostgresDatabases,
    private_broker: ManagedProcess,
    vault_server: VaultServer,
    audit_credentials: ServiceCredentials,
    vault_config_factory: Callable[[str], VaultConfig],
) -> None:
    # Production: the prune job runs as the retention role; the service relays its outbox.
    url = await postgres_database_factory.create("retention_event")
    await upgrade_to_head(url, MIGRATIONS)
    owner = create_async_engine(url, poolclass=NullPool)
    await apply_roles(owner, metadata)
    aged = AgedStore(url)
    vault_config = vault_config_factory("audit")
    async with VaultClient(vault_config) as vault:
        await aged.build(vault)
        public_keys = await vault.transit_public_keys(CheckpointConfig().key_name)
    login = await _login(owner, RETENTION)
    service = build(_service_settings(url, private_broker, vault_config))
    await service.start()
    try:
        as_retention = make_url(url).set(username=login).render_as_string(hide_password=False)
        code, report = await prune(aged, environment(vault_server, audit_credentials, as_retention))
        assert (code, report["deleted"]) == (0, 12)
        published = await read_topic(
            f"127.0.0.1:{private_broker.port}",
            topics.AUDIT_CHECKPOINTS,
            expect=2,
            timeout_s=30,
            where=lambda r: header(r, "ce_type") == RetentionApplied.ce_type,
        )
    finally:
        await service.stop()
        await aged.database.dispose()
        async with owner.begin() as connection:
            await connection.execute(text(f"DROP ROLE IF EXISTS {login}"))
        await owner.dispose()
    bodies = sorted(
        (RetentionApplied.model_validate_json(r.value) for r in published),
        key=lambda b: b.partition,
    )
    assert [(b.partition, b.seq, b.records) for b in bodies] == [(0, 6, 6), (1, 6, 6)]
    assert [header(r, "ce_subject") for r in published] != [None, None]
    # Anyone holding the checkpoint key's public keys can check what the event says.
    check = offline_signature_check(public_keys)
    for body in bodies:
        fields = body.model_dump(exclude={"signature"})
        assert check(horizon_payload(Horizon(**fields)), body.signature)
