"""The audit issue's proof: SIGKILL the service mid-ingest, restart it, and every event is stored
once, with chains that still verify.

The service runs as `moment-audit run`, a real process, against its own Tansu: the session broker
also feeds the in-process `suite` audit service in consumer group "audit", which would take
partitions from the process under test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.orm import audit_records
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.config import CheckpointConfig
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import (
    ChainVerifier,
    Report,
    SignatureCheck,
    offline_signature_check,
)
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.topics import CORE_TOPICS
from moment_crypto import VaultClient, VaultConfig
from moment_crypto.errors import VaultPermissionDenied
from moment_devstack.processes import LOOPBACK, ManagedProcess
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from tests.support.audit_events import access
from tests.support.audit_producers import PRODUCERS_ENV, signed
from tests.support.postgres import PostgresDatabases

pytestmark = pytest.mark.slow

EVENTS = 3_000
REDELIVERED = 5
SOURCE = "/moment/identity"
READY_MARKER = b"service ready"
# Generous for a busy 2-core machine: each returns as soon as its condition holds.
READY_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
CHECKPOINT_KEY = CheckpointConfig().key_name
POLL_S = 0.05
# Killed between these shares of the events stored: mid-ingest, not before or after it.
KILL_AFTER = EVENTS // 5
KILL_BEFORE = EVENTS * 9 // 10


@dataclass
class AuditProcess:
    """`moment-audit run` in its own process group, logging to a file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "moment-audit"), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crash or an OOM kill would end it."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        if not self.running() or self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-30:])

    async def wait_ready(self, starts: int) -> None:
        """Until the log says "service ready" `starts` times (the log is shared by restarts)."""
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while self.log_path.read_bytes().count(READY_MARKER) < starts:
            if not self.running():
                pytest.fail(f"moment-audit exited during start-up:\n{self.log()}")
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"moment-audit not ready within {READY_TIMEOUT_S:.0f}s:\n{self.log()}")
            await asyncio.sleep(POLL_S)


def audit_environment(kafka: str, database_url: str, vault: VaultConfig) -> dict[str, str]:
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": kafka,
        "KAFKA__CLIENT_ID": "audit",
        "DATABASE__URL": database_url,
        "VAULT__URL": vault.url,
        "VAULT__AUTH_METHOD": "approle",
        "VAULT__ROLE_ID_FILE": str(vault.role_id_file),
        "VAULT__SECRET_ID_FILE": str(vault.secret_id_file),
        "TELEMETRY__SERVICE_NAME": "audit",
        **PRODUCERS_ENV,
    }
    # Drop inherited MOMENT_AUDIT_* so only what this test sets steers the service.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MOMENT_AUDIT_")}
    return (
        inherited
        | {"PYTHONUNBUFFERED": "1"}
        | {f"MOMENT_AUDIT_{k}": v for k, v in settings.items()}
    )


def envelopes(count: int) -> list[Envelope]:
    # A subject each: the keys spread the events over every partition.
    subjects = [str(uuid.uuid4()) for _ in range(count)]
    return signed(*(Envelope.of(access(s), source=SOURCE, subject=s) for s in subjects))


async def publish_all(bootstrap: str, batch: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topics.AUDIT_EVENTS, e.data, key=e.key, headers=e.headers())
            for e in batch
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_records)) or 0)


async def wait_for_count(
    engine: AsyncEngine, done: Callable[[int], bool], limit_s: float, service: AuditProcess
) -> int:
    deadline = asyncio.get_running_loop().time() + limit_s
    count = await stored(engine)
    while not done(count):
        if not service.running():
            pytest.fail(f"moment-audit exited with {count} records stored:\n{service.log()}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{count} records stored after {limit_s:.0f}s:\n{service.log()}")
        await asyncio.sleep(POLL_S)
        count = await stored(engine)
    return count


async def distinct_events(engine: AsyncEngine) -> int:
    keys = select(audit_records.c.source, audit_records.c.event_id).distinct().subquery()
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(keys)) or 0)


async def signature_check(vault: VaultConfig, checkpoints: list[Checkpoint]) -> SignatureCheck:
    verdicts: dict[tuple[bytes, str], bool] = {}
    async with VaultClient(vault) as client:
        try:
            return offline_signature_check(await client.transit_public_keys(CHECKPOINT_KEY))
        except VaultPermissionDenied:
            # The role may only verify: ask Vault once per checkpoint.
            for cp in checkpoints:
                payload = cp.payload()
                verdicts[payload, cp.signature] = await client.verify(
                    CHECKPOINT_KEY, payload, cp.signature
                )
    return lambda payload, signature: verdicts.get((payload, signature), False)


async def verify_chains(engine: AsyncEngine, vault: VaultConfig) -> Report:
    """As `moment-audit verify`: every chain recomputed, every checkpoint signature checked."""
    async with async_sessionmaker(engine)() as session:
        checkpoints = await SqlCheckpointStore(session).all()
        store = SqlAuditStore(session)
        heads = {head.partition: head.seq for head in await store.heads()}
        verifier = ChainVerifier(checkpoints, await signature_check(vault, checkpoints), heads)
        async for row in store.stream_chained():
            verifier.feed(row)
    return verifier.finish()


async def redeliver(
    bootstrap: str, again: list[Envelope], engine: AsyncEngine, service: AuditProcess
) -> int:
    """Publish `again` once more; returns how many records there should be once it is consumed.

    Each redelivery is followed on its own key (so its partition) by a fresh event: once the fresh
    ones are stored, the duplicates before them were consumed too.
    """
    fresh = signed(
        *(Envelope.of(access(e.subject or ""), source=SOURCE, subject=e.subject) for e in again)
    )
    await publish_all(bootstrap, again + fresh)
    total = EVENTS + len(fresh)
    # No settle period: a double would be stored before the fresh event that follows it.
    await wait_for_count(engine, lambda n: n >= total, SETTLE_TIMEOUT_S, service)
    return total


@pytest.fixture
async def audit_db(
    postgres_database_factory: PostgresDatabases,
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    url = await postgres_database_factory.create("audit_kill")
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        yield url, engine
    finally:
        await engine.dispose()


async def test_sigkill_mid_ingest_loses_and_doubles_nothing(
    private_broker: ManagedProcess,
    audit_db: tuple[str, AsyncEngine],
    vault_config_factory: Callable[[str], VaultConfig],
    tmp_path: Path,
) -> None:
    bootstrap = f"{LOOPBACK}:{private_broker.port}"
    await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap), CORE_TOPICS)
    url, engine = audit_db
    vault = vault_config_factory("audit")
    env = audit_environment(bootstrap, url, vault)
    service = AuditProcess(env, tmp_path / "audit.log")
    events = envelopes(EVENTS)
    try:
        service.start()
        await service.wait_ready(starts=1)
        await publish_all(bootstrap, events)
        at_kill = await wait_for_count(engine, lambda n: n >= KILL_AFTER, SETTLE_TIMEOUT_S, service)
        service.kill()
        assert at_kill < KILL_BEFORE, f"ingest was nearly done ({at_kill}) before the kill"

        service.start()
        await service.wait_ready(starts=2)
        await wait_for_count(engine, lambda n: n >= EVENTS, SETTLE_TIMEOUT_S, service)
        total = await redeliver(bootstrap, events[:REDELIVERED], engine, service)

        assert await stored(engine) == total, "an event was stored twice or lost"
        assert await distinct_events(engine) == total, "an event was stored under two rows"
        report = await verify_chains(engine, vault)
        assert report.ok, "chains do not verify:\n" + "\n".join(f.line() for f in report.findings)
        assert report.records == total
        assert report.checkpoints > 0, "no signed checkpoint was made"
        assert service.stop() == 0, f"moment-audit did not stop cleanly:\n{service.log()}"
    finally:
        service.stop()
