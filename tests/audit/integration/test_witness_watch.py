"""The running service watches its own checkpoints on `audit.checkpoints`: deleting, rewriting or
hiding one in the database raises a `verification-failed` alert on audit.alerts, with no command
run. `moment-audit run` is a real process on a Tansu of the test's own, with OpenBao signing its
checkpoints and its own outbox relay publishing them, against PostgreSQL or SQLite.

The attacker holds the database as superuser but no Vault token: they can delete or rewrite any
row and change the schema, but sign nothing. Checkpoints are signed every 3 records of the one
partition the test writes to; the witness compares every half second and judges a checkpoint
missing from the stream 3 s after it was signed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.orm import audit_checkpoints, audit_records, messaging
from moment_audit.bootstrap import MIGRATIONS
from moment_audit.config import CheckpointConfig
from moment_contracts import topics
from moment_contracts.audit_chain import CheckpointSigned
from moment_contracts.envelope import Envelope
from moment_contracts.topics import CORE_TOPICS
from moment_crypto import VaultConfig
from moment_devstack.processes import LOOPBACK, ManagedProcess
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_persistence.config import Dialect
from moment_persistence.migrations import upgrade_to_head
from tests.audit.integration.test_kill_restart import AuditProcess, audit_environment
from tests.audit.integration.test_watch_service import Running, numbered, source_of
from tests.support.audit_store import as_dba
from tests.support.kafka import header, read_all
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.produce import publish

pytestmark = pytest.mark.slow

DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")
EVERY_S = 0.5
# Long enough that a busy machine's slow outbox relay is not taken for a missing checkpoint.
GRACE_S = 10.0
# Sweeps and the grace, and then some: a finding would have been alerted by then.
SETTLE_S = GRACE_S + 8 * EVERY_S
CAUGHT_UP = b"audit witness caught up"
FAILED = b"audit witness comparison failed"
DEADLINE_S = 120.0
POLL_S = 0.1

CHECKPOINT_KEY = CheckpointConfig().key_name
_C = audit_checkpoints.c
_R = audit_records.c


@dataclass
class Watched(Running):
    name: str = ""
    subject: str = ""
    sent: int = 0

    async def send(self, count: int) -> None:
        """`count` more records of the test's one producer, all on one partition."""
        seqs = range(self.sent + 1, self.sent + count + 1)
        await publish(
            self.bootstrap, topics.AUDIT_EVENTS, *numbered(self.name, self.subject, *seqs)
        )
        self.sent += count
        await self.wait_stored(source_of(self.name), self.sent)

    def healthy(self) -> None:
        """Still running, and the witness never failed (a test of absence would pass then)."""
        if not self.service.running():
            pytest.fail(f"moment-audit exited:\n{self.service.log()}")
        assert FAILED not in self.service.log_path.read_bytes(), self.service.log()

    async def scalar(self, query: Any) -> Any:
        async with self.engine.connect() as connection:
            return await connection.scalar(query)

    async def partition(self) -> int:
        source = source_of(self.name)
        query = select(_R.chain_partition).where(_R.source == source).limit(1)
        return int(await self.scalar(query))

    async def until(
        self, what: str, condition: Callable[[], Any], deadline_s: float = DEADLINE_S
    ) -> None:
        deadline = asyncio.get_running_loop().time() + deadline_s
        while not await condition():
            self.healthy()
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"{what} not within {deadline_s:.0f}s:\n{self.service.log()}")
            await asyncio.sleep(POLL_S)

    async def stored_checkpoints(self) -> int:
        return int(await self.scalar(select(func.count()).where(_C.number.is_not(None))))

    async def streamed_checkpoints(self) -> int:
        found = await read_all(self.bootstrap, topics.AUDIT_CHECKPOINTS)
        return sum(header(r, "ce_type") == CheckpointSigned.ce_type for r in found)

    async def checkpointed(self, count: int, *, streamed: int | None = None) -> None:
        """Until the store holds `count` checkpoints and the stream `streamed` (default all)."""

        async def stored() -> bool:
            return await self.stored_checkpoints() >= count

        async def on_stream() -> bool:
            return await self.streamed_checkpoints() >= (count if streamed is None else streamed)

        await self.until(f"{count} checkpoints stored", stored)
        await self.until("checkpoints on the stream", on_stream)

    async def ready(self, starts: int) -> None:
        async def logged() -> bool:
            return self.service.log_path.read_bytes().count(b"service ready") >= starts

        await self.until("the service ready", logged, deadline_s=180.0)

    async def caught_up(self, times: int = 1) -> None:
        async def logged() -> bool:
            return self.service.log_path.read_bytes().count(CAUGHT_UP) >= times

        await self.until("the witness caught up", logged)

    async def failed(
        self, timeout_s: float = DEADLINE_S, ending: str = ""
    ) -> list[dict[str, object]]:
        def matches(alert: dict[str, object]) -> bool:
            return alert.get("rule") == "verification-failed" and str(alert.get("detail")).endswith(
                ending
            )

        found = await self.alerts(matches, timeout_s=timeout_s)
        self.healthy()
        return found


# A live service per test is costly: PostgreSQL for every case, SQLite for one (the comparison
# reads the store through the same paged query on both).
@pytest.fixture(params=DIALECTS[:1])
async def watched(
    request: pytest.FixtureRequest,
    private_broker: ManagedProcess,
    postgres_database_factory: PostgresDatabases,
    vault_config_factory: Callable[[str], VaultConfig],
    tmp_path: Path,
) -> AsyncIterator[Watched]:
    bootstrap = f"{LOOPBACK}:{private_broker.port}"
    await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap), CORE_TOPICS)
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "live")
    await upgrade_to_head(url, MIGRATIONS)
    env = audit_environment(bootstrap, url, vault_config_factory("audit")) | {
        "MOMENT_AUDIT_CHECKPOINTS__EVERY_RECORDS": "3",
        "MOMENT_AUDIT_CHECKPOINTS__EVERY_SECONDS": "3600",
        # No stale-checkpoint finding while the test runs (it must exceed twice the cadence).
        "MOMENT_AUDIT_CHECKPOINTS__MAX_AGE_S": "7200",
        "MOMENT_AUDIT_WATCH__WITNESS_EVERY_SECONDS": str(EVERY_S),
        "MOMENT_AUDIT_WATCH__WITNESS_GRACE_S": str(GRACE_S),
        "MOMENT_AUDIT_WATCH__VERIFY_EVERY_SECONDS": "2",
    }
    service = AuditProcess(env, tmp_path / "audit.log")
    engine = create_async_engine(url, poolclass=NullPool)
    name = f"test:witness-{uuid.uuid4().hex[:12]}"
    try:
        service.start()
        await service.wait_ready(starts=1)
        yield Watched(bootstrap, url, engine, service, name, str(uuid.uuid4()))
    finally:
        service.stop()
        await engine.dispose()


async def two_witnessed_checkpoints(watched: Watched) -> int:
    """Checkpoints 1 and 2 (seq 3 and 6) of the test's partition, on the stream and read."""
    await watched.send(3)
    await watched.checkpointed(1)
    await watched.send(3)
    await watched.checkpointed(2)
    await watched.caught_up()
    # Read by the witness: the comparison has run clean since.
    await asyncio.sleep(SETTLE_S)
    assert await watched.failed(timeout_s=1) == []
    return await watched.partition()


async def test_a_healthy_service_raises_no_witness_alert_even_after_a_restart(
    watched: Watched, vault_root: hvac.Client
) -> None:
    await two_witnessed_checkpoints(watched)
    log = watched.service.log_path.read_text()
    assert "audit witness caught up with audit.checkpoints" in log
    # A new version of the checkpoint key: the witness fetches its public key when a checkpoint
    # names it, or that checkpoint would be rejected and alerted as not witnessed.
    vault_root.secrets.transit.rotate_key(name=CHECKPOINT_KEY, mount_point="transit")
    key = vault_root.secrets.transit.read_key(name=CHECKPOINT_KEY)
    version = int(key["data"]["latest_version"])
    await watched.send(3)
    await watched.checkpointed(3)
    newest = select(_C.signature).where(_C.number == 3)
    assert str(await watched.scalar(newest)).startswith(f"vault:v{version}:")
    await asyncio.sleep(SETTLE_S)
    assert await watched.failed(timeout_s=1) == []
    assert "not trusted" not in watched.service.log_path.read_text()
    # A new process has forgotten what it witnessed: it compares nothing until it has read the
    # stream again, so the store's checkpoints are not taken for hidden ones.
    # Killed, as a crash would end it; the consumer group takes a while to let the new one in.
    watched.service.kill()
    watched.service.start()
    await watched.ready(starts=2)
    await watched.send(3)
    await watched.checkpointed(4)
    await watched.caught_up(times=2)
    # Anyone who can write to the topic can put a checkpoint there they could not sign (one the
    # store lacks would be CHECKPOINT MISSING if trusted), or anything else.
    first = select(audit_checkpoints).where(_C.number == 1)
    async with watched.engine.connect() as connection:
        row = (await connection.execute(first)).one()
    forged = CheckpointSigned(
        partition=row.chain_partition,
        number=99,
        seq=row.seq,
        hash=row.hash,
        created_at=row.created_at,
        prev=row.prev,
        partitions=json.loads(row.partitions),
        signature=row.signature,
    )
    junk = Envelope(type=CheckpointSigned.ce_type, source="/moment/audit", data=b"{}")
    await publish(
        watched.bootstrap,
        topics.AUDIT_CHECKPOINTS,
        Envelope.of(forged, source="/moment/audit", subject="partition-0"),
        junk,
    )
    await asyncio.sleep(SETTLE_S)
    assert await watched.failed(timeout_s=1) == []
    log = watched.service.log_path.read_text()
    assert "comparing nothing until audit.checkpoints is read" in log
    assert "checkpoint signature does not verify, not trusted" in log
    assert "not a signed checkpoint" in log


@pytest.mark.parametrize("watched", DIALECTS, indirect=True)
async def test_a_deleted_checkpoint_is_alerted_as_missing(watched: Watched) -> None:
    partition = await two_witnessed_checkpoints(watched)
    # The clever variant: the newest checkpoint, the records only it covered and the head moved
    # back, so the service has nothing to sign again and nothing in the store is out of place.
    third = select(_R.record_hash).where(_R.chain_partition == partition, _R.seq == 3)
    hash_3 = str(await watched.scalar(third))
    await as_dba(
        watched.engine,
        f"DELETE FROM audit_records WHERE chain_partition = {partition} AND seq > 3",
        f"DELETE FROM audit_checkpoints WHERE chain_partition = {partition} AND number = 2",
        f"UPDATE audit_chain_heads SET seq = 3, hash = '{hash_3}' "
        f"WHERE chain_partition = {partition}",
    )
    missing = f"partition {partition} seq 6: CHECKPOINT MISSING (witnessed, not in the database)"
    [alert] = await watched.failed(ending=missing)
    assert alert["severity"] == "high"
    # The hourly verification is lent the stream: the chain is judged against what was lost.
    truncated = f"partition {partition} seq 4: TRUNCATED (chain ends at seq 3, signed up to seq 6)"
    assert len(await watched.failed(ending=truncated)) == 1
    await asyncio.sleep(SETTLE_S)
    assert len(await watched.failed(timeout_s=1, ending=missing)) == 1, "alerted again"


async def test_a_rewritten_checkpoint_is_alerted_as_differing(watched: Watched) -> None:
    partition = await two_witnessed_checkpoints(watched)
    # Checkpoint 2 made to say what checkpoint 1 says, with checkpoint 1's valid signature.
    first = select(_C.seq, _C.hash, _C.signature).where(
        _C.chain_partition == partition, _C.number == 1
    )
    async with watched.engine.connect() as connection:
        seq, hash_, signature = (await connection.execute(first)).one()
    await as_dba(
        watched.engine,
        f"UPDATE audit_checkpoints SET seq = {seq}, hash = '{hash_}', signature = '{signature}' "
        f"WHERE chain_partition = {partition} AND number = 2",
    )
    differs = f"partition {partition} seq 6: CHECKPOINT MISMATCH (differs from the witness)"
    [alert] = await watched.failed(ending=differs)
    assert alert["severity"] == "high"


HIDE_POSTGRESQL = (
    "CREATE FUNCTION hide_checkpoints() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.topic = 'audit.checkpoints' THEN NEW.published_at = now(); END IF; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER hide_checkpoints BEFORE INSERT ON outbox "
    "FOR EACH ROW EXECUTE FUNCTION hide_checkpoints()",
)
HIDE_SQLITE = (
    "CREATE TRIGGER hide_checkpoints AFTER INSERT ON outbox "
    "WHEN NEW.topic = 'audit.checkpoints' BEGIN "
    "UPDATE outbox SET published_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END",
)


async def test_a_checkpoint_kept_off_the_stream_is_alerted_as_not_witnessed(
    watched: Watched,
) -> None:
    partition = await two_witnessed_checkpoints(watched)
    # The attacker cannot sign, but can make every checkpoint the service signs from now on look
    # published already, so the relay never takes it: a trigger on the outbox does it for them.
    hide = HIDE_SQLITE if watched.url.startswith("sqlite") else HIDE_POSTGRESQL
    async with watched.engine.begin() as connection:
        for statement in hide:
            await connection.execute(text(statement))
    await watched.send(3)
    await watched.checkpointed(3, streamed=2)
    outbox = messaging.outbox.c
    unsent = select(func.count()).where(
        outbox.topic == topics.AUDIT_CHECKPOINTS, outbox.published_at.is_(None)
    )
    assert await watched.scalar(unsent) == 0
    hidden = (
        f"partition {partition} seq 9: CHECKPOINT NOT WITNESSED "
        "(number 3 and any after it stored, not on audit.checkpoints)"
    )
    [alert] = await watched.failed(ending=hidden)
    assert alert["severity"] == "high"
    assert await watched.streamed_checkpoints() == 2
