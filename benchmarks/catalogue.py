"""Every benchmark `make bench` runs, in order. Add new ones here."""

from __future__ import annotations

from benchmarks.audit import audit, audit_e2e
from benchmarks.audited_read import audited_read, read_vault_calls
from benchmarks.keyring import key_reads
from benchmarks.login import login
from benchmarks.outbox import outbox_write
from benchmarks.recovery import recovery
from benchmarks.registration import registration
from benchmarks.registry import Benchmark
from benchmarks.relay import outbox_relay
from benchmarks.request_reply import request_reply
from benchmarks.revocation import revocation

BENCHMARKS: tuple[Benchmark, ...] = (
    request_reply,
    registration,
    outbox_write,
    outbox_relay,
    key_reads,
    login,
    audited_read,
    read_vault_calls,
    audit,
    audit_e2e,
    revocation,
    recovery,
)


class UnknownBenchmark(ValueError):
    """A benchmark name that is not in the catalogue."""


def select(names: list[str] | None) -> tuple[Benchmark, ...]:
    """The benchmarks called `names` (all when None), in catalogue order."""
    if not names:
        return BENCHMARKS
    known = {b.name for b in BENCHMARKS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise UnknownBenchmark(f"unknown benchmarks {unknown}; known: {sorted(known)}")
    return tuple(b for b in BENCHMARKS if b.name in names)
