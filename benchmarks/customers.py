"""Synthetic customers for the login and read benchmarks, registered once per run.

Registering is not what these benchmarks measure, so it happens before any clock starts. Every
value is made up and unique per run: no real person's data is involved.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from moment_client.identity import IdentityClient
from moment_contracts.identity import RegistrationFields

# Registrations hash twice each; a few at a time keeps set-up short without starving the service.
REGISTER_CONCURRENCY = 4


@dataclass(frozen=True)
class Customer:
    subject_id: str
    username: str
    password: str


def _fields(run: str, index: int) -> RegistrationFields:
    return RegistrationFields(
        username=f"bench_login_{run}_{index}",
        email=f"bench.login.{run}.{index}@example.test",
        password=f"bench-login-password-{run}-{index}",
        name=f"Bench Customer {index}",
        age=30,
        recovery_question="bench question",
        recovery_answer=f"bench answer {index}",
    )


async def register_customers(client: IdentityClient, count: int) -> tuple[Customer, ...]:
    """`count` active adult customers, registered a few at a time."""
    run = secrets.token_hex(4)
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(index: int) -> Customer:
        fields = _fields(run, index)
        async with gate:
            accepted = await client.register(fields)
        return Customer(accepted.subject_id, fields.username, fields.password)

    return tuple(await asyncio.gather(*(one(i) for i in range(count))))


async def customer_tokens(client: IdentityClient, customers: Sequence[Customer]) -> list[str]:
    """One session token per customer, logged in one after another from distinct sources."""
    tokens: list[str] = []
    for index, customer in enumerate(customers):
        _, session = await client.login(
            customer.username, customer.password, source=f"bench-token-source-{index}"
        )
        tokens.append(session.token)
    return tokens
