"""Full registration through Kafka vs the argon2id hashing it cannot avoid.

A registration seals the fields, then identity opens them, asks Vault for a data key, encrypts,
hashes the password and the recovery answer (two argon2id hashes with OWASP parameters), writes
user, outbox and inbox rows, and replies. The raw baseline is argon2-cffi alone, hashing in
threads at the same concurrency. Because a registration hashes twice, a second baseline is the
rate of two hashes done one after the other: identity handles one command at a time, so that pair
is its ceiling, and the ratio to it shows what everything except hashing costs.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher

from benchmarks.context import BenchContext
from benchmarks.measure import interleaved_throughput
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_client.identity import IdentityClient
from moment_contracts.identity import RegistrationFields


def _fields(run: str, index: int) -> RegistrationFields:
    """Synthetic, unique per run: no real person's data is involved."""
    return RegistrationFields(
        username=f"bench_{run}_{index}",
        email=f"bench.{run}.{index}@example.test",
        password=f"bench-password-{run}-{index}",
        name=f"Bench User {index}",
        age=30,
        recovery_question="bench question",
        recovery_answer=f"bench answer {index}",
    )


async def _rates(ctx: BenchContext) -> tuple[float, float, float]:
    """Registrations/s, argon2 hashes/s at the same concurrency, and hashes/s one at a time."""
    identity = IdentityClient(await ctx.request_client())
    run = secrets.token_hex(4)
    await identity.register(_fields(run, -1))
    # identity hashes a 32-byte HMAC of the secret, so the baseline hashes 32 bytes too.
    hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
    secret = secrets.token_bytes(32)

    async def register(index: int) -> None:
        await identity.register(_fields(run, index))

    async def hash_once(_index: int) -> None:
        await asyncio.to_thread(hasher.hash, secret)

    scale = ctx.scale
    ours, raw, serial = await interleaved_throughput(
        [register, hash_once, hash_once],
        count=scale.registrations,
        concurrency=[scale.registration_concurrency, scale.registration_concurrency, 1],
        budget_s=scale.budget_s,
    )
    if ours.done < scale.registrations:
        ctx.notes.append(f"registration: time budget reached after {ours.done} registrations")
    return ours.per_s, raw.per_s, serial.per_s


@benchmark(
    "registration",
    comparisons=(
        Comparison(
            "registration_per_s", "raw_argon2_hash_per_s", "registration_ratio_to_raw_argon2"
        ),
        Comparison(
            "registration_per_s",
            "raw_argon2_serial_pairs_per_s",
            "registration_ratio_to_serial_hash_pairs",
        ),
    ),
    goals=(
        Goal(
            "registration_ratio_to_serial_hash_pairs",
            ">=",
            0.7,
            "more than 30% of a registration is spent outside argon2",
        ),
    ),
    timeout_s=120.0,
)
async def registration(ctx: BenchContext) -> Figures:
    per_s, parallel, serial = await _rates(ctx)
    return {
        "registration_per_s": per_s,
        "raw_argon2_hash_per_s": parallel,
        "raw_argon2_serial_hash_per_s": serial,
        "raw_argon2_serial_pairs_per_s": serial / 2,
    }
