"""How often reading subject keys reaches Vault once SubjectKeyring's cache is warm.

Keys for a set of subjects are created, a fresh keyring (empty cache) unwraps each once to warm
up, then the same subjects' keys are read over and over. The figure is Vault calls per 1000 reads
in that steady state; the warm-up calls are reported beside it as the uncached cost.
"""

from __future__ import annotations

import time
import uuid

from benchmarks.context import BenchContext
from benchmarks.registry import Figures, Goal, benchmark
from moment_crypto.envelope import SubjectKey, SubjectKeyring
from moment_crypto.vault import VaultClient
from moment_devstack.vault_bootstrap import SUBJECT_KEYS


async def _create_keys(vault: VaultClient, count: int) -> list[SubjectKey]:
    creator = SubjectKeyring(vault, SUBJECT_KEYS)
    return [await creator.new_key(str(uuid.uuid4())) for _ in range(count)]


@benchmark(
    "key_reads",
    goals=(Goal("vault_calls_per_1000_key_reads", "<=", 0.0, "warm key reads still reach Vault"),),
)
async def key_reads(ctx: BenchContext) -> Figures:
    vault = VaultClient(ctx.vault("identity"))
    await vault.start()
    try:
        keys = await _create_keys(vault, ctx.scale.key_subjects)
        keyring = SubjectKeyring(vault, SUBJECT_KEYS)
        before_warm_up = vault.calls
        for key in keys:
            await keyring.unwrap(key.subject_id, key.version, key.wrapped)
        warm_up_calls = vault.calls - before_warm_up
        reads = ctx.scale.key_reads
        before = vault.calls
        started = time.perf_counter()
        for index in range(reads):
            key = keys[index % len(keys)]
            await keyring.unwrap(key.subject_id, key.version, key.wrapped)
        elapsed = time.perf_counter() - started
        steady_calls = vault.calls - before
    finally:
        await vault.stop()
    return {
        "vault_calls_per_1000_key_reads": steady_calls * 1000 / reads,
        "vault_calls_to_warm_up": warm_up_calls,
        "warm_key_reads_per_s": reads / elapsed,
    }
