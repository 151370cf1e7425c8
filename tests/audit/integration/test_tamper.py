"""Tamper evidence on real PostgreSQL and SQLite, with checkpoints signed by a real OpenBao.

Each test builds a chained store, then a "DBA" bypasses the append-only triggers (drops them on
SQLite, session_replication_role=replica on PostgreSQL) and corrupts it; `moment-audit verify`
must name the exact finding and exit 1. A CHECK constraint ties every query column to the stored
document, so the DBA edits documents (and the columns with them); one who removes or weakens
that guarantee is caught by verify's schema check.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Executable, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from moment_audit.adapters.agreement import CONSTRAINT, FUNCTION, FUNCTION_SQL, POSTGRESQL_CHECK
from moment_audit.adapters.checkpoints import Checkpointer
from moment_audit.adapters.orm import audit_checkpoints, audit_records, messaging, metadata
from moment_audit.adapters.repositories import row_of
from moment_audit.bootstrap import MIGRATIONS
from moment_audit.config import CheckpointConfig
from moment_audit.domain.chain import ChainLink, canonical, content_of, document_of, record_hash
from moment_audit.service.ingest import ingest
from moment_audit.service.record_keys import read_record_macs
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_crypto import VaultClient, VaultConfig
from moment_devstack.stack import service_environment
from moment_devstack.vault_bootstrap import AUDIT_RECORDS_PATH, ServiceCredentials
from moment_persistence.config import DatabaseConfig, Dialect
from moment_persistence.database import Database
from moment_persistence.errors import PersistenceError
from moment_persistence.migrations import upgrade_to_head
from moment_persistence.unit_of_work import SqlUnitOfWork
from tests.support.audit_events import access
from tests.support.audit_producers import sign
from tests.support.audit_store import as_dba
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.produce import publish
from tests.support.suite import Suite
from tests.support.vault import VaultServer
from tests.support.waiting import eventually

PER_PARTITION = 6
DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")


@pytest.fixture(scope="module")
def audit_credentials(vault_bootstrap: dict[str, ServiceCredentials]) -> ServiceCredentials:
    return vault_bootstrap["audit"]


def environment(vault: VaultServer, creds: ServiceCredentials, url: str) -> dict[str, str]:
    return service_environment(
        "audit", kafka="127.0.0.1:1", vault_url=vault.url, credentials=creds, database_url=url
    )


async def run_verify(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "moment-audit"),
        "verify",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    assert process.returncode != 2, err.decode()
    return process.returncode, out.decode()


class Store:
    """A migrated audit database holding two chained partitions and a checkpoint on each."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.database = Database(DatabaseConfig(url=SecretStr(url)))

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.database, metadata=metadata)

    async def fill(self, vault: VaultClient | None) -> None:
        # As the service stores them: with its record MAC when it holds the key.
        macs = None if vault is None else await read_record_macs(vault, AUDIT_RECORDS_PATH)
        for n in range(PER_PARTITION * 2):
            body = access(f"subject-{n}")
            envelope = Envelope.of(body, source="/moment/identity", subject=body.subject_id)
            async with self.uow() as uow:
                assert await ingest(uow, envelope, body, n % 2, n, macs=macs)
        if vault is None:
            return
        checkpointer = Checkpointer(vault, CheckpointConfig(), self.uow)
        assert len(await checkpointer.run_once(force=True)) == 2

    async def change(self, statement: str) -> None:
        """What the service's own role could try."""
        async with self.uow() as uow:
            await uow.session.execute(text(statement))
            await uow.commit()

    async def tamper(self, *statements: str | Executable) -> None:
        """What a DBA could do, around the triggers."""
        await as_dba(self.database.engine, *statements)


@pytest.fixture(params=DIALECTS)
async def store(
    request: pytest.FixtureRequest,
    postgres_database_factory: PostgresDatabases,
    tmp_path: Path,
    vault_config_factory: Callable[[str], VaultConfig],
) -> AsyncIterator[Store]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "tamper")
    await upgrade_to_head(url, MIGRATIONS)
    built = Store(url)
    async with VaultClient(vault_config_factory("audit")) as vault:
        await built.fill(vault)
    yield built
    await built.database.dispose()


@pytest.fixture
def store_env(
    store: Store, vault_server: VaultServer, audit_credentials: ServiceCredentials
) -> dict[str, str]:
    return environment(vault_server, audit_credentials, store.url)


async def test_an_intact_store_verifies(store_env: dict[str, str]) -> None:
    code, out = await run_verify(store_env)
    assert (code, out.splitlines()[-1]) == (0, "12 records, 2 checkpoints: verified")


async def test_without_vault_records_are_never_checkpointed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'unsigned.db'}"
    await upgrade_to_head(url, MIGRATIONS)
    store = Store(url)
    await store.fill(None)
    await store.database.dispose()
    env = {
        "MOMENT_AUDIT_DATABASE__URL": url,
        "MOMENT_AUDIT_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    code, out = await run_verify(env)
    assert (code, out.splitlines()) == (
        1,
        [
            "partition 0 seq 1: STALE CHECKPOINT (never checkpointed)",
            "partition 1 seq 1: STALE CHECKPOINT (never checkpointed)",
            "warning: record MACs not checked (the record MAC key could not be read)",
            "not yet covered: partition 0, 6 records after seq 0",
            "not yet covered: partition 1, 6 records after seq 0",
            "12 records, 0 checkpoints: 2 findings; 12 records not yet covered",
        ],
    )
    # With no age limit (a dev store), it says so, and still does not count them as verified.
    code, out = await run_verify(env, "--max-age", "0")
    assert (code, out.splitlines()[:2], out.splitlines()[-1]) == (
        0,
        ["warning: partition 0: no checkpoints", "warning: partition 1: no checkpoints"],
        "12 records, 0 checkpoints: verified; 12 records not yet covered",
    )


async def test_postgresql_rejects_truncate(postgres_database_factory: PostgresDatabases) -> None:
    url = await postgres_database_factory.create("truncate")
    await upgrade_to_head(url, MIGRATIONS)
    store = Store(url)
    try:
        for table in ("audit_records", "audit_checkpoints"):
            with pytest.raises((PersistenceError, DBAPIError), match="append-only"):
                await store.change(f"TRUNCATE {table}")
    finally:
        await store.database.dispose()


@pytest.mark.parametrize("statement", ["UPDATE {t} SET id = id + 1000", "DELETE FROM {t}"])
@pytest.mark.parametrize("table", ["audit_records", "audit_checkpoints"])
async def test_the_store_is_append_only(store: Store, statement: str, table: str) -> None:
    with pytest.raises((PersistenceError, DBAPIError)):
        await store.change(statement.format(t=table))
    async with store.uow() as uow:
        count = await uow.session.scalar(select(func.count()).select_from(audit_records))
        signed = await uow.session.scalar(select(func.count()).select_from(audit_checkpoints))
    assert (count, signed) == (PER_PARTITION * 2, 2)


def edit(partition: int, seq: int, old: str, new: str, /, **columns: str | int) -> str:
    """An UPDATE of one stored document, and of `columns` as the CHECK requires."""
    # text() reads ":name" as a bind parameter.
    old, new = old.replace(":", r"\:"), new.replace(":", r"\:")
    also = "".join(
        f", {name} = " + (f"'{value}'" if isinstance(value, str) else str(value))
        for name, value in columns.items()
    )
    return (
        f"UPDATE audit_records SET document = replace(document, '{old}', '{new}'){also} "
        f"WHERE chain_partition = {partition} AND seq = {seq}"
    )


# What an unguarded column is for: "correcting" a record without touching what was hashed.
MARKETING = "UPDATE audit_records SET purpose = 'marketing' WHERE chain_partition = 1 AND seq = 2"

TAMPERING: dict[str, tuple[list[str], str]] = {
    "modify": (
        [edit(1, 2, '"purpose":"user-dealings"', '"purpose":"marketing"', purpose="marketing")],
        "partition 1 seq 2: MODIFIED",
    ),
    "delete": (
        ["DELETE FROM audit_records WHERE chain_partition = 0 AND seq = 3"],
        "partition 0 seq 3: DELETED",
    ),
    "reorder": (
        [
            edit(0, 4, '"seq":4,', '"seq":-4,', seq=-4),
            edit(0, 5, '"seq":5,', '"seq":4,', seq=4),
            edit(0, -4, '"seq":-4,', '"seq":5,', seq=5),
        ],
        # The record MAC covers the place the service stored each record at.
        "partition 0 seq 4: REORDERED (was seq 5)\n"
        "partition 0 seq 4: UNAUTHENTICATED RECORD (bad MAC)\n"
        "partition 0 seq 5: REORDERED (was seq 4)\n"
        "partition 0 seq 5: UNAUTHENTICATED RECORD (bad MAC)",
    ),
    "truncate": (
        ["DELETE FROM audit_records WHERE chain_partition = 1 AND seq > 4"],
        "partition 1 seq 5: TRUNCATED (chain ends at seq 4, signed up to seq 6)",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
async def test_verify_names_each_tampering(
    store: Store, store_env: dict[str, str], case: str
) -> None:
    statements, expected = TAMPERING[case]
    await store.tamper(*statements)
    code, out = await run_verify(store_env)
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("partition")] == (
        expected.splitlines()
    )
    assert "schema:" not in out


async def test_every_query_column_agrees_with_its_document(store: Store) -> None:
    await store.tamper(
        edit(1, 2, '"actor_id":"staff-1"', '"actor_id":"staff-\u00e9"', actor_id="staff-\u00e9")
    )
    async with store.uow() as uow:
        rows = (await uow.session.execute(select(audit_records))).mappings().all()
    assert len(rows) == PER_PARTITION * 2
    for row in rows:
        document = json.loads(row["document"])
        assert (row["chain_partition"], row["seq"]) == (document["partition"], document["seq"])
        content = content_of(dict(row))
        assert content == {name: document[name] for name in content}
    assert {r["actor_id"] for r in rows} == {"staff-1", "staff-\u00e9"}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET purpose = 'marketing' WHERE seq = 2",
        "UPDATE audit_records SET occurred_at = received_at WHERE seq = 2",
        "UPDATE audit_records SET fields = '[]' WHERE seq = 2",
        "UPDATE audit_records SET producer_seq = 7 WHERE seq = 2",
        edit(1, 2, '"outcome":"success"', '"outcome":"denied"'),
        edit(1, 2, '"seq":2,', '"seq":2,"extra":1,'),
    ],
)
async def test_the_database_refuses_a_column_that_disagrees_with_its_document(
    store: Store, statement: str
) -> None:
    with pytest.raises(DBAPIError, match=r"(?i)check constraint"):
        await store.tamper(statement)


UNGUARDING: dict[tuple[Dialect, str], tuple[list[str], str]] = {
    ("postgresql", "dropped"): (
        [f"ALTER TABLE audit_records DROP CONSTRAINT {CONSTRAINT}", MARKETING],
        f"{CONSTRAINT} is gone: no column is tied to its document",
    ),
    ("postgresql", "not valid"): (
        [
            f"ALTER TABLE audit_records DROP CONSTRAINT {CONSTRAINT}",
            MARKETING,
            f"ALTER TABLE audit_records ADD CONSTRAINT {CONSTRAINT} "
            f"CHECK ({POSTGRESQL_CHECK}) NOT VALID",
        ],
        f"{CONSTRAINT} is NOT VALID: rows before it were never checked",
    ),
    ("postgresql", "weakened"): (
        [
            f"ALTER TABLE audit_records DROP CONSTRAINT {CONSTRAINT}",
            f"ALTER TABLE audit_records ADD CONSTRAINT {CONSTRAINT} CHECK (document <> '')",
            MARKETING,
        ],
        f"{CONSTRAINT} checks something else",
    ),
    ("postgresql", "redefined"): (
        [FUNCTION_SQL.replace("SELECT coalesce(", "SELECT true OR coalesce("), MARKETING],
        f"{FUNCTION}() is redefined",
    ),
    ("sqlite", "checks off"): (
        ["PRAGMA ignore_check_constraints = ON", MARKETING],
        f"1 rows disagree with their document ({CONSTRAINT})",
    ),
    ("sqlite", "rebuilt"): (
        [
            "CREATE TABLE audit_records_copy AS SELECT * FROM audit_records",
            "DROP TABLE audit_records",
            "ALTER TABLE audit_records_copy RENAME TO audit_records",
            MARKETING,
        ],
        f"{CONSTRAINT} is gone or changed: no column is tied to its document",
    ),
}


# CREATE TABLE ... AS SELECT keeps no key: verify names each (adapters/guarantees.py).
KEYS_LOST = {
    "rebuilt": [
        f"{name} on audit_records is gone"
        for name in (
            "pk_audit_records",
            "uq_audit_records_chain_seq",
            "uq_audit_records_source_event",
        )
    ]
}


@pytest.mark.parametrize(("store", "case"), sorted(UNGUARDING), indirect=["store"])
async def test_verify_names_a_column_no_longer_tied_to_its_document(
    store: Store, store_env: dict[str, str], case: str
) -> None:
    statements, detail = UNGUARDING[store.dialect, case]
    await store.tamper(*statements)
    code, out = await run_verify(store_env)
    lost = [f"schema: GUARD MISSING ({guard})" for guard in KEYS_LOST.get(case, ())]
    # Verify reads the row itself too: the edit the guarantee no longer refused is named.
    expected = [
        f"schema: UNGUARDED COLUMN ({detail})",
        *lost,
        "partition 1 seq 2: COLUMN MISMATCH (disagrees with its document: purpose)",
        f"12 records, 2 checkpoints: {2 + len(lost)} findings",
    ]
    assert (code, out.splitlines()) == (1, expected)


async def test_verify_names_a_bad_signature(store: Store, store_env: dict[str, str]) -> None:
    # Flip one byte of partition 0's signature.
    async with store.uow() as uow:
        signature = await uow.session.scalar(
            select(audit_checkpoints.c.signature).where(audit_checkpoints.c.chain_partition == 0)
        )
    assert signature is not None
    prefix, encoded = signature.rsplit(":", 1)
    flipped = ("B" if encoded[0] == "A" else "A") + encoded[1:]
    await store.tamper(
        f"UPDATE audit_checkpoints SET signature = '{prefix}:{flipped}' WHERE chain_partition = 0"
    )
    code, out = await run_verify(store_env, "--json")
    report = json.loads(out)
    assert (code, report["ok"]) == (1, False)
    assert report["findings"] == [
        {"partition": 0, "seq": PER_PARTITION, "finding": "BAD SIGNATURE", "detail": ""}
    ]


async def published_checkpoints(suite: Suite) -> list[object]:
    """When each checkpoint in the outbox reached audit.checkpoints, once all have."""
    outbox = messaging.outbox
    query = select(outbox.c.published_at).where(outbox.c.topic == topics.AUDIT_CHECKPOINTS)

    async def all_published() -> list[object] | None:
        async with suite.audit.core.database.sessionmaker() as session:
            published = list((await session.scalars(query)).all())
        return published if published and all(published) else None

    return await eventually(all_published, what="checkpoints published")


async def test_events_through_the_suite_verify(
    suite: Suite, vault_server: VaultServer, audit_credentials: ServiceCredentials
) -> None:
    bodies = [access(str(uuid.uuid4())) for _ in range(5)]
    envelopes = [
        sign(Envelope.of(b, source="/moment/identity", subject=b.subject_id)) for b in bodies
    ]
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *envelopes, envelopes[0])
    ids = [e.id for e in envelopes]

    async def stored() -> list[int] | None:
        async with suite.audit.core.database.sessionmaker() as session:
            query = select(audit_records.c.seq).where(audit_records.c.event_id.in_(ids))
            seqs = list((await session.scalars(query)).all())
        return seqs if len(seqs) == len(ids) else None

    seqs = await eventually(stored, what="the events stored")
    assert all(seq >= 1 for seq in seqs)
    checkpointer = getattr(suite.audit, "checkpointer", None)
    assert checkpointer is not None
    signed = await checkpointer.run_once(force=True)
    assert signed
    published = await published_checkpoints(suite)
    assert len(published) >= len(signed)
    assert all(published)
    env = environment(vault_server, audit_credentials, suite.urls["audit"])
    code, out = await run_verify(env)
    assert code == 0, out


async def test_verify_names_an_inserted_record(store: Store, store_env: dict[str, str]) -> None:
    # A forger who knows the algorithm, but not the hash the chain's next record must name.
    async with store.uow() as uow:
        row = (
            (await uow.session.execute(select(audit_records).where(audit_records.c.seq == 6)))
            .mappings()
            .first()
        )
    assert row is not None
    partition = int(row["chain_partition"])
    content = {**content_of(dict(row)), "event_id": "forged"}
    chained: dict[str, Any] = {"partition": partition, "seq": 7, "prev_hash": "ab" * 32}
    link = ChainLink(
        partition, 7, "ab" * 32, record_hash(content, **chained), document_of(content, **chained)
    )
    forged = row_of(link, row["kafka_partition"], row["kafka_offset"], row["received_at"])
    await store.tamper(insert(audit_records).values(forged))
    code, out = await run_verify(store_env)
    assert (code, out.splitlines()[0]) == (
        1,
        f"partition {partition} seq 7: INSERTED (does not chain to the previous record)",
    )


async def test_verify_names_a_replayed_record(store: Store, store_env: dict[str, str]) -> None:
    async with store.uow() as uow:
        row = (
            (
                await uow.session.execute(
                    select(audit_records).where(
                        audit_records.c.chain_partition == 1, audit_records.c.seq == 2
                    )
                )
            )
            .mappings()
            .first()
        )
    assert row is not None
    document = {**json.loads(row["document"]), "event_id": "replayed", "seq": 7}
    link = ChainLink(1, 7, document["prev_hash"], row["record_hash"], canonical(document))
    replayed = row_of(link, row["kafka_partition"], row["kafka_offset"], row["received_at"])
    await store.tamper(insert(audit_records).values(replayed))
    code, out = await run_verify(store_env)
    assert (code, out.splitlines()[0]) == (1, "partition 1 seq 7: INSERTED (a copy of seq 2)")


async def test_the_running_service_signs_every_n_records(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    bodies = [access(subject_id) for _ in range(CheckpointConfig().every_records)]
    envelopes = [
        sign(Envelope.of(b, source="/moment/identity", subject=subject_id)) for b in bodies
    ]
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *envelopes)
    last = audit_records.c.event_id == envelopes[-1].id
    signed_past_it = (
        select(func.count())
        .select_from(
            audit_checkpoints.join(audit_records, audit_records.c.event_id == envelopes[-1].id)
        )
        .where(
            audit_checkpoints.c.chain_partition == audit_records.c.chain_partition,
            audit_checkpoints.c.seq >= audit_records.c.seq,
            last,
        )
    )

    async def signed() -> int:
        async with suite.audit.core.database.sessionmaker() as session:
            return int(await session.scalar(signed_past_it) or 0)

    # A busy 2-core machine may take a while to ingest and checkpoint 100 records.
    assert await eventually(signed, what="a checkpoint past the last record") >= 1
