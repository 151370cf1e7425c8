"""How soon a `moment-audit run` killed with SIGKILL stores new events once restarted, beside a
bare aiokafka group member killed and restarted the same way.

The service runs as the real process (`moment-audit run`, Vault AppRole, its own database), on
the bench's Tansu. After a warm-up (its groups formed, one event stored), each sample kills its
whole process group with SIGKILL, produces one new event signed as identity while it is down,
restarts it and times from the restart to that event's row being visible in the database: the
process's start-up, its consumer groups' rebalance (the killed members, which sent no LeaveGroup,
must expire first: KAFKA__SESSION_TIMEOUT_MS), the fetch, ingest and commit.

`raw_group_recovery_s` is the same cycle for benchmarks/recovery_member.py, one bare aiokafka
consumer with the same group timing (KafkaConfig's defaults) on a topic of its own: a Python
process start, one group's rebalance past its killed member, one fetch and commit. The ratio is
what the service adds to what the broker and the group protocol cost anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from benchmarks.context import BenchContext
from benchmarks.measure import percentile
from benchmarks.recovery_member import COMMITTED
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_audit.adapters.orm import audit_records
from moment_audit.bootstrap import MIGRATIONS
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_contracts.topics import TopicSpec
from moment_crypto import VaultClient
from moment_crypto.keysets import VersionedKeys
from moment_crypto.producer_mac import ProducerSigner
from moment_devstack.vault_bootstrap import AUDIT_PRODUCERS_PATH
from moment_messaging.admin import ensure_topics
from moment_persistence.migrations import upgrade_to_head

SOURCE = "/moment/identity"
RAW_TOPIC = "bench.recovery"
# Generous: a sample that takes this long has failed the goal many times over.
RECOVERY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.02

Check = Callable[[], Awaitable[bool]]


class NotRecovered(TimeoutError):
    """The restarted process did not take the new record in time."""


@dataclasses.dataclass
class Child:
    """A process in a session of its own, logging to a file, killed as a crash would be."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.proc is None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT_S)

    def logged(self, marker: bytes) -> int:
        return self.log_path.read_bytes().count(marker) if self.log_path.exists() else 0

    def tail(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-20:])


async def _until(done: Check, what: str, child: Child) -> float:
    """Seconds until `done()` (an async predicate) holds."""
    started = time.perf_counter()
    while not await done():
        if child.proc is not None and child.proc.poll() is not None:
            raise NotRecovered(f"{what}: the process exited\n{child.tail()}")
        if time.perf_counter() - started > RECOVERY_TIMEOUT_S:
            raise NotRecovered(f"{what}: not within {RECOVERY_TIMEOUT_S:g}s\n{child.tail()}")
        await asyncio.sleep(POLL_S)
    return time.perf_counter() - started


def _audit_env(ctx: BenchContext, url: str) -> dict[str, str]:
    vault = ctx.vault("audit")
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": ctx.kafka.bootstrap_servers,
        "KAFKA__CLIENT_ID": "audit",
        "DATABASE__URL": url,
        "VAULT__URL": vault.url,
        "VAULT__AUTH_METHOD": "approle",
        "VAULT__ROLE_ID_FILE": str(vault.role_id_file),
        "VAULT__SECRET_ID_FILE": str(vault.secret_id_file),
        "TELEMETRY__SERVICE_NAME": "audit",
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MOMENT_AUDIT_")}
    return inherited | {f"MOMENT_AUDIT_{k}": v for k, v in settings.items()}


async def _identity_signer(ctx: BenchContext) -> ProducerSigner:
    """Identity's producer key, read with identity's own AppRole, as identity signs."""
    async with VaultClient(ctx.vault("identity")) as vault:
        return ProducerSigner(await VersionedKeys.load(vault, f"{AUDIT_PRODUCERS_PATH}/identity"))


def _event(signer: ProducerSigner) -> Envelope:
    subject = str(uuid.uuid4())
    body = PersonalDataAccessed(
        action="read",
        actor_id=subject,
        actor_role="customer",
        subject_id=subject,
        fields=("email",),
        purpose="self-service",
        outcome="success",
        occurred_at=datetime.now(UTC),
    )
    envelope = Envelope.of(body, source=SOURCE, subject=subject)
    return dataclasses.replace(
        envelope, extra=signer.headers_for(envelope.headers(), envelope.data)
    )


async def _send(bootstrap: str, topic: str, envelope: Envelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, envelope.data, key=envelope.key, headers=envelope.headers()
        )
    finally:
        await producer.stop()


def _stored(engine: AsyncEngine, event_id: str) -> Check:
    async def check() -> bool:
        query = select(audit_records.c.id).where(audit_records.c.event_id == event_id)
        async with engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    return check


def _logged_more(child: Child, marker: bytes, seen: int) -> Check:
    async def check() -> bool:
        return child.logged(marker) > seen

    return check


async def _audit_samples(ctx: BenchContext, run_dir: Path, count: int) -> list[float]:
    url = await ctx.databases.create("bench_recovery")
    await upgrade_to_head(url, MIGRATIONS)
    signer = await _identity_signer(ctx)
    moment_audit = str(Path(sys.executable).parent / "moment-audit")
    child = Child([moment_audit, "run"], _audit_env(ctx, url), run_dir / "audit.log")
    engine = create_async_engine(url, poolclass=NullPool)
    samples: list[float] = []
    try:
        child.start()
        warm_up = _event(signer)
        await _send(ctx.kafka.bootstrap_servers, topics.AUDIT_EVENTS, warm_up)
        await _until(_stored(engine, warm_up.id), "warm-up event stored", child)
        for _ in range(count):
            child.kill()
            event = _event(signer)
            await _send(ctx.kafka.bootstrap_servers, topics.AUDIT_EVENTS, event)
            child.start()
            samples.append(await _until(_stored(engine, event.id), "event stored", child))
    finally:
        child.kill()
        await engine.dispose()
    return samples


async def _raw_samples(ctx: BenchContext, run_dir: Path, count: int) -> list[float]:
    await ensure_topics(ctx.kafka, [TopicSpec(RAW_TOPIC, partitions=3)])
    group = f"bench-recovery-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "benchmarks.recovery_member"]
    argv += [ctx.kafka.bootstrap_servers, RAW_TOPIC, group]
    child = Child(argv, dict(os.environ), run_dir / "member.log")
    marker = COMMITTED.encode()
    samples: list[float] = []
    try:
        child.start()
        await _send(ctx.kafka.bootstrap_servers, RAW_TOPIC, _raw_record())
        await _until(_logged_more(child, marker, 0), "warm-up committed", child)
        for _ in range(count):
            child.kill()
            seen = child.logged(marker)
            await _send(ctx.kafka.bootstrap_servers, RAW_TOPIC, _raw_record())
            child.start()
            samples.append(await _until(_logged_more(child, marker, seen), "committed", child))
    finally:
        child.kill()
    return samples


def _raw_record() -> Envelope:
    subject = str(uuid.uuid4())
    body = PersonalDataAccessed(
        action="read",
        actor_id=subject,
        actor_role="customer",
        subject_id=subject,
        fields=("email",),
        outcome="success",
        occurred_at=datetime.now(UTC),
    )
    return Envelope.of(body, source="/bench/recovery", subject=subject)


@benchmark(
    "recovery",
    comparisons=(
        Comparison("audit_recovery_s", "raw_group_recovery_s", "audit_recovery_ratio_to_raw"),
    ),
    goals=(
        Goal(
            "audit_recovery_max_s",
            "<=",
            15.0,
            "after a crash, audit records wait that long before they are stored and chained",
        ),
    ),
    timeout_s=600.0,
)
async def recovery(ctx: BenchContext) -> Figures:
    count = ctx.scale.recoveries
    with TemporaryDirectory(prefix="bench-recovery-") as tmp:
        audit = await _audit_samples(ctx, Path(tmp), count)
        raw = await _raw_samples(ctx, Path(tmp), count)
    return {
        "audit_recovery_s": percentile(audit, 50),
        "audit_recovery_max_s": max(audit, default=0.0),
        "raw_group_recovery_s": percentile(raw, 50),
        "recovery_samples": len(audit),
    }
