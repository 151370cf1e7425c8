"""After a SIGKILL, a restarted `moment-audit run` stores new events within a bounded time.

A killed consumer sends no LeaveGroup: its group waits for its session to expire before the
restarted process gets the partitions. Before the groups' timing was set for it (KafkaConfig's
session and heartbeat), the first batch after a restart took 24-61 s on Tansu. The 15 s goal is
measured by `make bench` (benchmarks/recovery.py, beside a bare aiokafka member killed and
restarted the same way); this test holds a bound a busy 2-core machine still meets, well under
the old figure, and prints what it measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.orm import audit_records
from moment_audit.bootstrap import MIGRATIONS
from moment_contracts.topics import CORE_TOPICS
from moment_crypto import VaultConfig
from moment_devstack.processes import LOOPBACK, ManagedProcess
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_persistence.migrations import upgrade_to_head
from tests.audit.integration.test_kill_restart import (
    AuditProcess,
    audit_environment,
    envelopes,
    publish_all,
)
from tests.support.postgres import PostgresDatabases
from tests.support.waiting import DEADLINE_S

pytestmark = pytest.mark.slow

# Restart to first new batch stored. The old behaviour reached 61 s; the goal is 15 s (bench).
RECOVERY_BOUND_S = 40.0
BATCH = 20
POLL_S = 0.02


async def stored_of(engine: AsyncEngine, ids: list[str]) -> int:
    query = select(func.count()).where(audit_records.c.event_id.in_(ids))
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


async def seconds_until_stored(
    engine: AsyncEngine, ids: list[str], service: AuditProcess, timeout_s: float
) -> float:
    """From now until every one of `ids` is stored (the batch committed)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await stored_of(engine, ids) < len(ids):
        if not service.running():
            pytest.fail(f"moment-audit exited:\n{service.log()}")
        if loop.time() - started > timeout_s:
            pytest.fail(f"not stored within {timeout_s:.0f}s:\n{service.log()}")
        await asyncio.sleep(POLL_S)
    return loop.time() - started


async def test_a_killed_service_stores_new_events_soon_after_its_restart(
    private_broker: ManagedProcess,
    postgres_database_factory: PostgresDatabases,
    vault_config_factory: Callable[[str], VaultConfig],
    tmp_path: Path,
) -> None:
    bootstrap = f"{LOOPBACK}:{private_broker.port}"
    await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap), CORE_TOPICS)
    url = await postgres_database_factory.create("audit_recovery")
    await upgrade_to_head(url, MIGRATIONS)
    service = AuditProcess(
        audit_environment(bootstrap, url, vault_config_factory("audit")), tmp_path / "audit.log"
    )
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        service.start()
        warm_up = envelopes(BATCH)
        await publish_all(bootstrap, warm_up)
        # Its groups formed and committing: the state a crash interrupts.
        await seconds_until_stored(engine, [e.id for e in warm_up], service, DEADLINE_S)

        service.kill()
        new = envelopes(BATCH)
        await publish_all(bootstrap, new)
        service.start()
        took = await seconds_until_stored(engine, [e.id for e in new], service, DEADLINE_S)
        print(f"restart to first new batch stored: {took:.1f}s")
        assert took < RECOVERY_BOUND_S, f"recovery took {took:.1f}s:\n{service.log()}"
        assert service.stop() == 0, f"moment-audit did not stop cleanly:\n{service.log()}"
    finally:
        service.stop()
        await engine.dispose()
