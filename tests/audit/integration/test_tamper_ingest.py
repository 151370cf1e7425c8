"""Never sign what wasn't ingested: `moment-audit run` on its own Tansu, real OpenBao, PostgreSQL
and SQLite, against a DBA who appends a correctly chained record behind its back.

The attacker holds the database as superuser but has no Vault token: they can compute a chain
link (the algorithm is public) and move the derived head row with it, but not the record MAC,
whose key only audit's AppRole reads. So the forged row carries no MAC, or one copied from a
genuine row. The running service must not sign a checkpoint covering it, must raise one
`unauthenticated-record` alert on audit.alerts naming its partition and seq, and `moment-audit
verify` (as audit's AppRole) must name it UNAUTHENTICATED RECORD. Genuine records keep being
signed, before and after a restart (the key is read at start-up).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.orm import (
    audit_chain_heads,
    audit_checkpoints,
    audit_records,
    messaging,
)
from moment_audit.adapters.repositories import row_of
from moment_audit.bootstrap import MIGRATIONS, build
from moment_audit.config import AuditSettings, RecordMacConfig
from moment_audit.domain.chain import ChainHead, content_of, extend
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.admission import Admission
from moment_audit.service.record_keys import read_record_macs
from moment_audit.service.verification import vault_signatures
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.topics import CORE_TOPICS
from moment_crypto import VaultClient, VaultConfig
from moment_crypto.errors import CryptoError, VaultPermissionDenied
from moment_crypto.keysets import VersionedKeys
from moment_devstack.processes import LOOPBACK, ManagedProcess
from moment_devstack.vault_bootstrap import AUDIT_RECORDS_PATH, ServiceCredentials
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig, Dialect
from moment_persistence.migrations import upgrade_to_head
from tests.audit.integration.test_kill_restart import (
    READY_MARKER,
    AuditProcess,
    audit_environment,
)
from tests.audit.integration.test_tamper import Store, environment, run_verify
from tests.support.audit_events import access
from tests.support.audit_producers import PRODUCERS, sign
from tests.support.audit_store import as_dba
from tests.support.kafka import read_topic
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.produce import publish
from tests.support.vault import VaultServer

pytestmark = pytest.mark.slow

DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")
RULE = "unauthenticated-record"
POLL_S = 0.05
# Generous: a busy 2-core machine, shared with other test runs.
TIMEOUT_S = 120.0
CHECKPOINT_EVERY_S = 0.5
RESTART_TIMEOUT_S = 240.0


@dataclass
class Running:
    bootstrap: str
    url: str
    engine: AsyncEngine
    service: AuditProcess
    verify_env: dict[str, str]

    async def _scalar(self, query: Any) -> Any:
        async with self.engine.connect() as connection:
            return await connection.scalar(query)

    async def genuine(self, subject: str, count: int) -> tuple[int, int]:
        """Publish `count` signed events about one subject (so one partition) and wait until
        they are stored; their partition and the highest seq they took."""
        source = f"/test/ingest-mac-{uuid.uuid4().hex[:12]}"
        envelopes = [
            sign(Envelope.of(access(subject, producer_seq=n), source=source, subject=subject))
            for n in range(1, count + 1)
        ]
        await publish(self.bootstrap, topics.AUDIT_EVENTS, *envelopes)
        mine = audit_records.c.source == source
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while await self._scalar(select(func.count()).where(mine)) < count:
            self._still_running()
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"records not stored in {TIMEOUT_S:.0f}s:\n{self.service.log()}")
            await asyncio.sleep(POLL_S)
        query = select(audit_records.c.chain_partition, func.max(audit_records.c.seq)).where(mine)
        async with self.engine.connect() as connection:
            partition, seq = (await connection.execute(query.group_by("chain_partition"))).one()
        return int(partition), int(seq)

    def _still_running(self) -> None:
        if not self.service.running():
            pytest.fail(f"moment-audit exited:\n{self.service.log()}")

    async def signed_up_to(self, partition: int) -> int:
        c = audit_checkpoints.c
        return int(
            await self._scalar(select(func.max(c.seq)).where(c.chain_partition == partition)) or 0
        )

    async def wait_signed(self, partition: int, seq: int) -> None:
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while await self.signed_up_to(partition) < seq:
            self._still_running()
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"seq {seq} not signed in {TIMEOUT_S:.0f}s:\n{self.service.log()}")
            await asyncio.sleep(POLL_S)

    async def forge(
        self, partition: int, mac: str | None = None, *, with_checkpoint: bool = False
    ) -> int:
        return await forge(self.engine, partition, mac, with_checkpoint=with_checkpoint)

    async def mac_of(self, partition: int, seq: int) -> str:
        r = audit_records.c
        return str(
            await self._scalar(
                select(r.record_mac).where(r.chain_partition == partition, r.seq == seq)
            )
        )

    async def alerts(self, named: str = "", timeout_s: float = TIMEOUT_S) -> list[dict[str, Any]]:
        """The unauthenticated-record alerts whose detail ends with `named`."""

        def ours(record: ConsumerRecord[bytes, bytes]) -> bool:
            alert = json.loads(record.value or b"{}")
            return bool(alert.get("rule") == RULE and str(alert.get("detail")).endswith(named))

        found = await read_topic(
            self.bootstrap, topics.AUDIT_ALERTS, timeout_s=timeout_s, where=ours
        )
        return [json.loads(r.value or b"{}") for r in found]


async def forge(
    engine: AsyncEngine, partition: int, mac: str | None = None, *, with_checkpoint: bool = False
) -> int:
    """As a DBA, in one transaction: append a record chained to the partition's head (right
    prev_hash, right record_hash, head row moved), with `mac` for its record MAC, and, with
    `with_checkpoint`, a checkpoint row over it; its seq."""
    r, h = audit_records.c, audit_chain_heads.c
    async with engine.connect() as connection:
        newest = (await SqlCheckpointStore(AsyncSession(connection)).latest())[partition]
        head = (
            await connection.execute(select(h.seq, h.hash).where(h.chain_partition == partition))
        ).one()
        query = select(audit_records).where(r.chain_partition == partition, r.seq == head.seq)
        last = (await connection.execute(query)).mappings().one()
    content = {**content_of(dict(last)), "event_id": str(uuid.uuid4()), "subject_id": "forged"}
    link = extend(ChainHead(partition, int(head.seq), str(head.hash)), content)
    forged = row_of(link, int(last["kafka_partition"]), 10**9 + link.seq, last["received_at"], mac)
    statements: list[Any] = [
        insert(audit_records).values(forged),
        update(audit_chain_heads)
        .where(h.chain_partition == partition)
        .values(seq=link.seq, hash=link.record_hash),
    ]
    if with_checkpoint:
        statements.append(insert(audit_checkpoints).values(_fake_checkpoint(newest, link.head)))
    await as_dba(engine, *statements)
    return link.seq


def _fake_checkpoint(newest: Checkpoint, head: ChainHead) -> dict[str, Any]:
    """The next checkpoint's row over `head`, chained to `newest`, with a signature of the right
    shape that no key made (the DBA has no Vault token)."""
    assert newest.number is not None
    return {
        "chain_partition": head.partition,
        "seq": head.seq,
        "hash": head.hash,
        "created_at": datetime.now(UTC),
        "signature": "vault:v1:" + "A" * 86 + "==",
        "number": newest.number + 1,
        "prev": newest.digest(),
        "partitions": json.dumps(list(newest.partitions)),
    }


@pytest.fixture(params=DIALECTS)
async def running(
    request: pytest.FixtureRequest,
    private_broker: ManagedProcess,
    postgres_database_factory: PostgresDatabases,
    vault_config_factory: Callable[[str], VaultConfig],
    vault_server: VaultServer,
    vault_bootstrap: dict[str, ServiceCredentials],
    tmp_path: Path,
) -> AsyncIterator[Running]:
    bootstrap = f"{LOOPBACK}:{private_broker.port}"
    await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap), CORE_TOPICS)
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "ingestmac")
    await upgrade_to_head(url, MIGRATIONS)
    env = audit_environment(bootstrap, url, vault_config_factory("audit")) | {
        "MOMENT_AUDIT_CHECKPOINTS__EVERY_SECONDS": str(CHECKPOINT_EVERY_S),
    }
    service = AuditProcess(env, tmp_path / "audit.log")
    engine = create_async_engine(url, poolclass=NullPool)
    verify_env = environment(vault_server, vault_bootstrap["audit"], url)
    try:
        service.start()
        await service.wait_ready(starts=1)
        yield Running(bootstrap, url, engine, service, verify_env)
    finally:
        service.stop()
        await engine.dispose()


async def _refused(running: Running, partition: int, seq: int, reason: str) -> None:
    """One alert names the forged record; no checkpoint covers it, even once genuine records
    follow it; verify names it."""
    named = f"partition {partition} seq {seq}: {reason}"
    [alert] = await running.alerts(named)
    assert alert["severity"] == "high"
    assert await running.signed_up_to(partition) < seq
    # Genuine records chained after the forgery: still nothing signed at or beyond it.
    subject = await _subject_on(running, partition)
    _, last = await running.genuine(subject, 3)
    assert last > seq
    await asyncio.sleep(8 * CHECKPOINT_EVERY_S)
    assert await running.signed_up_to(partition) < seq
    assert len(await running.alerts(named, timeout_s=2)) == 1, "alerted again"
    code, out = await run_verify(running.verify_env)
    unauthenticated = [line for line in out.splitlines() if "UNAUTHENTICATED RECORD" in line]
    assert code == 1
    assert [line.split(" (")[0] for line in unauthenticated] == [
        f"partition {partition} seq {seq}: UNAUTHENTICATED RECORD"
    ], out


async def _ready_again(service: AuditProcess) -> None:
    """The restarted service is ready; rejoining its consumer group on Tansu can take minutes
    on a loaded machine (README's figures), so the deadline is longer than test_kill_restart's."""
    deadline = asyncio.get_running_loop().time() + RESTART_TIMEOUT_S
    while service.log_path.read_bytes().count(READY_MARKER) < 2:
        if not service.running():
            pytest.fail(f"moment-audit exited during start-up:\n{service.log()}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(
                f"moment-audit not ready again in {RESTART_TIMEOUT_S:.0f}s:\n{service.log()}"
            )
        await asyncio.sleep(POLL_S)


async def _subject_on(running: Running, partition: int) -> str:
    r = audit_records.c
    query = select(r.subject_id).where(r.chain_partition == partition, r.subject_id != "forged")
    return str(await running._scalar(query.limit(1)))


async def test_a_chained_record_without_a_mac_is_never_signed(running: Running) -> None:
    partition, seq = await running.genuine(str(uuid.uuid4()), 3)
    await running.wait_signed(partition, seq)
    forged = await running.forge(partition)
    await _refused(running, partition, forged, "missing-mac")


async def test_a_mac_copied_from_another_row_is_refused(running: Running) -> None:
    partition, seq = await running.genuine(str(uuid.uuid4()), 3)
    await running.wait_signed(partition, seq)
    forged = await running.forge(partition, await running.mac_of(partition, seq))
    await _refused(running, partition, forged, "bad-mac")


# Rejoining the consumer group on Tansu after the restart can take minutes on a loaded machine.
@pytest.mark.timeout(RESTART_TIMEOUT_S + 180)
async def test_genuine_records_are_signed_across_a_restart(running: Running) -> None:
    partition, seq = await running.genuine(str(uuid.uuid4()), 5)
    await running.wait_signed(partition, seq)
    # As a crash would end it (test_watch_service does the same).
    running.service.kill()
    running.service.start()
    await _ready_again(running.service)
    for _ in range(3):
        partition, seq = await running.genuine(str(uuid.uuid4()), 4)
        await running.wait_signed(partition, seq)
    assert await running.alerts(timeout_s=2) == [], "a genuine record was refused"
    code, out = await run_verify(running.verify_env)
    assert code == 0, out
    assert "record MACs not checked" not in out


async def test_only_audit_reads_the_record_mac_key(
    vault_config_factory: Callable[[str], VaultConfig],
) -> None:
    """Whoever reads it can vouch for a forged record: audit's AppRole only, and only to read."""
    async with VaultClient(vault_config_factory("audit")) as audit:
        keys = await VersionedKeys.load(audit, AUDIT_RECORDS_PATH)
        assert keys.current == "v1"
        with pytest.raises(VaultPermissionDenied):
            await audit.write_kv(AUDIT_RECORDS_PATH, {"current": "v1", "v1": "AAAA"})
    for outsider in ("identity", "consent", "storefront"):
        async with VaultClient(vault_config_factory(outsider)) as client:
            with pytest.raises(VaultPermissionDenied):
                await client.read_kv(AUDIT_RECORDS_PATH)


async def test_audit_does_not_start_without_its_record_mac_key(
    kafka_topics: KafkaConfig,
    vault_config_factory: Callable[[str], VaultConfig],
    tmp_path: Path,
) -> None:
    """It would store records no checkpoint may ever cover."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'nokey.db'}"
    await upgrade_to_head(url, MIGRATIONS)
    settings = AuditSettings(
        kafka=kafka_topics.model_copy(update={"client_id": "audit"}),
        database=DatabaseConfig(url=SecretStr(url)),
        vault=vault_config_factory("audit"),
        records=RecordMacConfig(key_path=f"{AUDIT_RECORDS_PATH}-missing"),
        producers=PRODUCERS,
    )
    service = build(settings)
    try:
        with pytest.raises(CryptoError, match="audit-records-missing"):
            await service.start()
    finally:
        await service.stop()


async def test_a_forged_checkpoint_over_a_forged_record_is_not_built_upon(
    running: Running,
) -> None:
    """The clever variant: the DBA also adds a checkpoint row covering the forgery (they can't
    sign it), so that the service would start its next walk after it."""
    partition, seq = await running.genuine(str(uuid.uuid4()), 3)
    await running.wait_signed(partition, seq)
    c = audit_checkpoints.c
    newest = select(func.max(c.number)).where(c.chain_partition == partition)
    number = int(await running._scalar(newest)) + 1
    forged = await running.forge(partition, with_checkpoint=True)
    # The fake checkpoint covers the head: the partition is due again once records follow.
    _, last = await running.genuine(await _subject_on(running, partition), 3)
    assert last > forged
    named = f"partition {partition} seq {forged}: untrusted-checkpoint"
    [alert] = await running.alerts(named)
    assert alert["severity"] == "high"
    await asyncio.sleep(8 * CHECKPOINT_EVERY_S)
    assert await running._scalar(newest) == number, "a checkpoint was chained to the forged one"
    code, out = await run_verify(running.verify_env)
    assert code == 1
    assert f"partition {partition} seq {forged}: UNAUTHENTICATED RECORD (no MAC)" in out


@pytest.fixture(params=DIALECTS)
async def signed_store(
    request: pytest.FixtureRequest,
    postgres_database_factory: PostgresDatabases,
    vault_config_factory: Callable[[str], VaultConfig],
    tmp_path: Path,
) -> AsyncIterator[tuple[Store, VaultClient]]:
    """Two chained partitions with MACs, each signed (test_tamper's Store), and audit's Vault."""
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "admit")
    await upgrade_to_head(url, MIGRATIONS)
    store = Store(url)
    async with VaultClient(vault_config_factory("audit")) as vault:
        await store.fill(vault)
        yield store, vault
    await store.database.dispose()


async def test_admission_passes_signed_heads_and_refuses_what_follows_a_forgery(
    signed_store: tuple[Store, VaultClient],
) -> None:
    store, vault = signed_store
    macs = await read_record_macs(vault, AUDIT_RECORDS_PATH)
    admit = Admission(store.uow, lambda: macs, vault_signatures(vault, "audit-checkpoints"))
    async with store.uow() as uow:
        latest = await SqlCheckpointStore(uow.session).latest()
    signed = [ChainHead(p, cp.seq, cp.hash) for p, cp in sorted(latest.items())]
    # A heartbeat's heads (at the signed seq) pass as signed.
    assert await admit(signed, latest) == signed
    # A forged record after partition 0's head: nothing beyond the checkpoint is admitted.
    forged = await forge(store.database.engine, 0)
    beyond = [ChainHead(0, forged, "derived"), signed[1]]
    assert await admit(beyond, latest) == [signed[1]]
    [alert] = await _outboxed(store)
    assert alert["detail"] == f"checkpoint refused: partition 0 seq {forged}: missing-mac"
    assert await admit(beyond, latest) == [signed[1]]
    assert len(await _outboxed(store)) == 1, "raised again"


async def _outboxed(store: Store) -> list[dict[str, Any]]:
    outbox = messaging.outbox
    async with store.uow() as uow:
        payloads = await uow.session.scalars(
            select(outbox.c.payload).where(outbox.c.topic == topics.AUDIT_ALERTS)
        )
        alerts = [json.loads(p) for p in payloads]
    return [a for a in alerts if a["rule"] == RULE]
