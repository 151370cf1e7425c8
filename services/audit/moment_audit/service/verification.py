"""Verify a whole audit store: what `moment-audit verify` runs, and the watch every hour.

One function for both, so the background check and the command can never judge one store
differently. Signatures (checkpoints and retention horizons) are checked by whatever `signatures`
the caller passes: the command opens Vault for the run, the service uses its running client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.agreement import DOCUMENT_COLUMNS
from moment_audit.adapters.checkpoints import SqlCheckpointStore
from moment_audit.adapters.guarantees import missing_guards, unguarded_columns
from moment_audit.adapters.orm import audit_records
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.adapters.retention import SqlRetentionStore, TransitSignatures
from moment_audit.domain.agreement_check import RowChecks
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.domain.retention import Horizon, horizon_payload
from moment_audit.service.record_check import RecordMacCheck
from moment_audit.service.verify import (
    COLUMN_MISMATCH,
    DUPLICATE_EVENT,
    GUARD_MISSING,
    SCHEMA,
    ChainVerifier,
    Finding,
    Report,
    SignatureCheck,
    schema_findings,
)
from moment_audit.service.witness import add_witness, judge_witnessed
from moment_crypto.config import VaultConfig
from moment_crypto.record_mac import RecordMacs
from moment_crypto.vault import VaultClient

# Signed (payload, signature) pairs in, a check for them out.
Signatures = Callable[[list[tuple[bytes, str]]], Awaitable[SignatureCheck]]
# Rows verified between two chances for other tasks to run, when verifying inside the service.
YIELD_EVERY = 1000


class NoSignatureCheck(Exception):
    """Checkpoints exist but there is no Vault configured to check their signatures."""


Progress = Callable[[int | None], None]


def _nothing(_total: int | None) -> None:
    return None


async def _check(
    vault: VaultClient, key_name: str, signed: list[tuple[bytes, str]]
) -> SignatureCheck:
    return await TransitSignatures(vault, key_name).checker(signed)


def _nothing_signed(_payload: bytes, _signature: str) -> bool:
    return False


def vault_signatures(vault: VaultClient | None, key_name: str) -> Signatures:
    """With a running Vault client (the service's)."""

    async def check(signed: list[tuple[bytes, str]]) -> SignatureCheck:
        if not signed:
            return _nothing_signed
        if vault is None:
            raise NoSignatureCheck(f"{len(signed)} signatures, and no Vault to check them")
        return await _check(vault, key_name, signed)

    return check


def config_signatures(config: VaultConfig | None, key_name: str) -> Signatures:
    """For one run (the command): logs in to Vault only if there is a signature to check."""

    async def check(signed: list[tuple[bytes, str]]) -> SignatureCheck:
        if not signed or config is None:
            return await vault_signatures(None, key_name)(signed)
        async with VaultClient(config) as vault:
            return await _check(vault, key_name, signed)

    return check


async def _signed_state(
    session: AsyncSession, signatures: Signatures, witnessed: list[Checkpoint]
) -> tuple[list[Checkpoint], list[Horizon], SignatureCheck]:
    """The stored checkpoints and horizons, and a check for every signature in sight."""
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        # One snapshot for every query: a checkpoint, horizon or prune committed between two of
        # them would otherwise look like tampering (SQLite's BEGIN IMMEDIATE already holds one).
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    checkpoints: list[Checkpoint] = await SqlCheckpointStore(session).all()
    horizons = await SqlRetentionStore(session).horizons()
    signed = [(cp.payload(), cp.signature) for cp in checkpoints + witnessed] + [
        (horizon_payload(h), h.signature) for h in horizons
    ]
    # Without a checkpoint there is nothing a signature could vouch for (nor a horizon).
    check = await signatures(signed if checkpoints or witnessed else [])
    return checkpoints, horizons, check


async def _schema_findings(session: AsyncSession) -> list[Finding]:
    """What the catalog says of the guards: read, never trusted to have held all along."""
    unguarded = await unguarded_columns(session)
    return schema_findings(unguarded) + guard_findings(await missing_guards(session))


async def _walk(
    store: SqlAuditStore, readers: tuple[ChainVerifier, RowChecks, RecordMacCheck], on_row: Progress
) -> None:
    """Every stored row, once, to each reader: the chain, the row's own columns, its MAC."""
    fed = 0
    async for row in store.stream_chained():
        for reader in readers:
            reader.feed(row)
        on_row(None)
        fed += 1
        if fed % YIELD_EVERY == 0:
            # Hashing is CPU work: let ingest and the relay run between stretches of it.
            await asyncio.sleep(0)


async def verify_store(
    session: AsyncSession,
    signatures: Signatures,
    on_row: Progress = _nothing,
    witnessed: list[Checkpoint] | None = None,
    *,
    max_age: timedelta | None = None,
    record_macs: RecordMacs | None = None,
) -> Report:
    """`on_row(total)` once with the number of records, then `on_row(None)` per record.
    `witnessed`: checkpoints an outside witness kept (service/witness.py). With `max_age`, a
    checkpoint older than that when verify starts is stale. Without `record_macs` (the key only
    audit's AppRole reads) record MACs are not checked."""
    now = datetime.now(UTC)
    witnessed = witnessed or []
    checkpoints, horizons, check = await _signed_state(session, signatures, witnessed)
    judgement = judge_witnessed(checkpoints, witnessed, check)
    on_row(await session.scalar(select(func.count()).select_from(audit_records)))
    store = SqlAuditStore(session)
    schema = await _schema_findings(session)
    heads = {head.partition: head.seq for head in await store.heads()}
    verifier = ChainVerifier(
        checkpoints + judgement.trusted, check, heads, horizons, now=now, max_age=max_age
    )
    rows = RowChecks(DOCUMENT_COLUMNS)
    macs = RecordMacCheck.of(record_macs, checkpoints, check)
    await _walk(store, (verifier, rows, macs), on_row)
    report = verifier.finish()
    report.findings.extend(_row_findings(rows))
    macs.finish(report)
    add_witness(report, judgement, len(checkpoints))
    report.findings[:0] = schema
    return report


def _row_findings(rows: RowChecks) -> list[Finding]:
    """What verify found by reading each row itself, trusting no constraint (issue 9)."""
    return [
        *(Finding(p.partition, p.seq, COLUMN_MISMATCH, p.detail) for p in rows.mismatches),
        *(Finding(p.partition, p.seq, DUPLICATE_EVENT, p.detail) for p in rows.duplicates),
    ]


def guard_findings(missing: list[str]) -> list[Finding]:
    """A trigger, constraint or grant the append-only promise rests on that is not in place."""
    return [Finding(SCHEMA, 0, GUARD_MISSING, problem) for problem in missing]
