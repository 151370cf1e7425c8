"""What a benchmark gets: the running infrastructure, the scale to run at, and shared services.

The identity service and its request client are started on first use and shared by every benchmark
that needs them; they stop when the context's exit stack closes, before the infrastructure does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from benchmarks.customers import Customer, register_customers
from moment_client.client import ClientConfig, RequestClient
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.identity import GetSealingKey, SealingKey
from moment_crypto.config import VaultConfig
from moment_identity.bootstrap import IdentityService
from moment_identity.config import IdentitySettings
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_telemetry.config import TelemetryConfig

IDENTITY_WORKERS = IdentitySettings.model_fields["kafka"].default.consumer_workers

# Both the service's consumer and the raw echo wait this long per fetch, so the ratio between
# them measures the layer, not a configuration difference (the service default is 10 ms).
FETCH_MAX_WAIT_MS = 5
# The first request also waits for identity's consumer group to form.
FIRST_REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Scale:
    """Operation counts per benchmark; `budget_s` bounds every measuring loop in time."""

    roundtrips: int = 2_000
    roundtrip_concurrency: int = 16
    latency_samples: int = 600
    registrations: int = 100
    registration_concurrency: int = 8
    outbox_rows: int = 1_000
    relay_rows: int = 5_000
    key_subjects: int = 100
    key_reads: int = 1_000
    # Customers registered once and shared by the login and read benchmarks.
    customers: int = 20
    logins: int = 120
    login_concurrency: int = 4
    reads: int = 600
    read_concurrency: int = 8
    read_latency_samples: int = 200
    vault_reads: int = 1_000
    # Audit events ingested per side; the chained ones are then verified.
    audit_records: int = 2_000
    # Staff accounts deactivated, each timed until audit refuses its token.
    revocations: int = 20
    # Kills with SIGKILL and restarts of `moment-audit run`, each timed until it stores again.
    recoveries: int = 5
    budget_s: float = 25.0

    @classmethod
    def quick(cls) -> Scale:
        """Tiny counts, to check that the benchmarks run at all; the figures mean nothing."""
        return cls(
            roundtrips=40,
            roundtrip_concurrency=4,
            latency_samples=10,
            registrations=4,
            registration_concurrency=2,
            outbox_rows=20,
            relay_rows=50,
            key_subjects=5,
            key_reads=20,
            customers=3,
            logins=6,
            login_concurrency=2,
            reads=12,
            read_concurrency=2,
            read_latency_samples=6,
            vault_reads=12,
            audit_records=30,
            revocations=3,
            recoveries=1,
            budget_s=10.0,
        )

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


class DatabaseSource(Protocol):
    async def create(self, prefix: str) -> str:
        """A fresh, empty database; returns its async SQLAlchemy URL."""
        ...


class BenchContext:
    def __init__(
        self,
        *,
        kafka: KafkaConfig,
        vault: Callable[[str], VaultConfig],
        databases: DatabaseSource,
        scale: Scale,
        stack: AsyncExitStack,
    ) -> None:
        self.kafka = kafka
        self.vault = vault
        self.databases = databases
        self.scale = scale
        self.notes: list[str] = []
        # What the figures ran on, recorded with them so runs can be compared like with like.
        self.environment: dict[str, str] = {}
        self._stack = stack
        self._identity: IdentityService | None = None
        self._client: RequestClient | None = None
        self._customers: tuple[Customer, ...] | None = None

    async def identity(self) -> IdentityService:
        """The identity service running in this process on a database of its own."""
        if self._identity is None:
            url = await self.databases.create("bench_identity")
            service = IdentityService(
                IdentitySettings(
                    kafka=self.kafka.model_copy(
                        update={
                            "client_id": "identity",
                            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
                            # As deployed: identity's default number of consumer workers.
                            "consumer_workers": IDENTITY_WORKERS,
                        }
                    ),
                    database=DatabaseConfig(url=SecretStr(url)),
                    vault=self.vault("identity"),
                    telemetry=TelemetryConfig(
                        service_name="identity", log_format="console", log_level="WARNING"
                    ),
                )
            )
            await service.start()
            self._stack.push_async_callback(service.stop)
            self._identity = service
        return self._identity

    async def request_client(self) -> RequestClient:
        """A storefront RequestClient that identity has already answered once."""
        if self._client is None:
            await self.identity()
            client = RequestClient(
                ClientConfig(
                    bootstrap_servers=self.kafka.bootstrap_servers,
                    source="/storefront/bench",
                    fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                )
            )
            await client.start()
            self._stack.push_async_callback(client.stop)
            await client.request(
                topics.IDENTITY_COMMANDS,
                GetSealingKey(),
                SealingKey,
                timeout_s=FIRST_REQUEST_TIMEOUT_S,
            )
            self._client = client
        return self._client

    async def identity_client(self) -> IdentityClient:
        """An IdentityClient over the shared request client, with identity's key already fetched."""
        client = IdentityClient(await self.request_client())
        await client.sealing_key()
        return client

    async def customers(self) -> tuple[Customer, ...]:
        """`scale.customers` registered customers, the same ones for every benchmark that asks."""
        if self._customers is None:
            self._customers = await register_customers(
                await self.identity_client(), self.scale.customers
            )
        return self._customers
