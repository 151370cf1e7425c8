"""Full customer login through Kafka vs the argon2id verify it cannot avoid.

A login seals the fields to identity, which opens them, checks the throttle counters, verifies the
peppered password with argon2id (OWASP: m=19456 KiB, t=2, p=1), has Vault Transit sign a session
token, commits the audit event through the outbox with its inbox row, and replies with the session
sealed to a one-time key. Customers are registered beforehand (not measured) and logged in
round-robin, each attempt from a distinct source, so no lockout is ever near.

The goal is judged against argon2 verifies done one after another. Identity runs one consumer
worker per partition of identity.commands (three by default), so logins overlap and can approach
that serial rate on 2 cores; the verify rate at the login loop's own concurrency is reported beside
it, with its own ratio.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher

from benchmarks.context import BenchContext
from benchmarks.measure import interleaved_throughput
from benchmarks.registry import Comparison, Figures, Goal, benchmark

WARM_UP = 3


def _raw_verify() -> PasswordHasher:
    return PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


@benchmark(
    "login",
    comparisons=(
        Comparison("login_per_s", "raw_argon2_verify_per_s", "login_ratio_to_raw_argon2"),
        Comparison(
            "login_per_s",
            "raw_argon2_verify_concurrent_per_s",
            "login_ratio_to_concurrent_raw_argon2",
        ),
    ),
    goals=(
        Goal(
            "login_ratio_to_raw_argon2",
            ">=",
            0.9,
            "the service adds more than 10% to the hash it must do",
        ),
    ),
    timeout_s=120.0,
)
async def login(ctx: BenchContext) -> Figures:
    client = await ctx.identity_client()
    customers = await ctx.customers()
    identity = await ctx.identity()
    # identity verifies a 32-byte HMAC of the password (the pepper), so the baseline does too.
    hasher = _raw_verify()
    secret = secrets.token_bytes(32)
    digest = hasher.hash(secret)

    async def log_in(index: int) -> None:
        customer = customers[index % len(customers)]
        await client.login(customer.username, customer.password, source=f"bench-login-{index}")

    async def verify(_index: int) -> None:
        await asyncio.to_thread(hasher.verify, digest, secret)

    for index in range(WARM_UP):
        await log_in(-1 - index)
        await verify(index)
    scale = ctx.scale
    calls_before = identity.vault.calls
    ours, serial, concurrent = await interleaved_throughput(
        [log_in, verify, verify],
        count=scale.logins,
        concurrency=[scale.login_concurrency, 1, scale.login_concurrency],
        budget_s=scale.budget_s,
    )
    if ours.done < scale.logins:
        ctx.notes.append(f"login: time budget reached after {ours.done} logins")
    return {
        "login_per_s": ours.per_s,
        "raw_argon2_verify_per_s": serial.per_s,
        "raw_argon2_verify_concurrent_per_s": concurrent.per_s,
        "login_concurrency": scale.login_concurrency,
        "vault_calls_per_login": (identity.vault.calls - calls_before) / max(1, ours.done),
    }
