"""Customers reading their own fields through Kafka, audited before release, vs bare Kafka echoes.

A read seals the caller's token to identity, which opens it, verifies it offline, checks the
session version in its database, unwraps the subject's data key (cached), decrypts the fields,
seals them to a one-time reply key, makes the audit event durable and only then replies. In the
default `outbox` mode the audit row commits in the same transaction as the inbox row; in `broker`
mode it is published to audit.events and acknowledged (acks=all) before that commit.

The baselines are the bare aiokafka echoes of benchmarks/raw_kafka.py on the same broker in the
same run. The serial echo waits for each reply's acknowledgement before the next record, as
identity's one-at-a-time consumer does, so the goal is judged against it; the pipelined echo (the
transport's ceiling) is reported beside it. Figure names carry a `read_` prefix because
request_reply already reports its own `raw_kafka_*` figures, measured at another concurrency.

A second benchmark counts identity's Vault calls across warm reads: the data keys are cached and
tokens are verified offline, so steady reads should not reach Vault at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from benchmarks.context import BenchContext
from benchmarks.customers import Customer, customer_tokens
from benchmarks.measure import (
    Operation,
    interleaved_latencies_ms,
    interleaved_throughput,
    rate_and_latency_figures,
    throughput,
)
from benchmarks.raw_kafka import RawEcho
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_client.identity import IdentityClient
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_contracts.identity import GetSealingKey
from moment_contracts.profile import ReadableField
from moment_identity.adapters.audit_emitter import AuditEmitter, BrokerAckAudit, OutboxAudit
from moment_identity.bootstrap import IdentityService
from moment_identity.service.unit_of_work import IdentityUnitOfWork
from moment_messaging.producer import ResilientProducer

FIELDS: tuple[ReadableField, ...] = ("name", "email")
ECHO_WARM_UP = 20
OUTBOX = "audited_read"
BROKER = "audited_read_broker_ack"
SERIAL = "read_raw_kafka_serial_roundtrip"
PIPELINED = "read_raw_kafka_roundtrip"


class SwitchedAudit:
    """Identity's audit emitter for the run, pointed at one mode or the other.

    Each read operation selects its mode before sending. The measuring loops finish one side
    (every reply received) before starting the next, so no read is processed under the wrong mode.
    """

    def __init__(self, current: AuditEmitter) -> None:
        self.current = current

    async def emit(self, uow: IdentityUnitOfWork, event: PersonalDataAccessed) -> None:
        await self.current.emit(uow, event)


@asynccontextmanager
async def _switched_audit(identity: IdentityService) -> AsyncIterator[SwitchedAudit]:
    """Identity's reads audited through a switch; the configured emitter is restored after."""
    deps = identity.handlers().read_deps
    original = deps.audit
    switch = SwitchedAudit(original)
    # ReadDeps is frozen for the service's own code; a benchmark may swap the emitter for a while.
    object.__setattr__(deps, "audit", switch)
    try:
        yield switch
    finally:
        object.__setattr__(deps, "audit", original)


class Readers:
    """Read operations over the run's customers, round-robin, each with its own token."""

    def __init__(
        self, client: IdentityClient, customers: Sequence[Customer], tokens: Sequence[str]
    ) -> None:
        self._client = client
        self._pairs = [(c.subject_id, t) for c, t in zip(customers, tokens, strict=True)]

    async def read(self, index: int) -> None:
        subject_id, token = self._pairs[index % len(self._pairs)]
        await self._client.read(token, subject_id, FIELDS)

    def in_mode(self, switch: SwitchedAudit, emitter: AuditEmitter) -> Operation:
        async def read(index: int) -> None:
            switch.current = emitter
            await self.read(index)

        return read

    async def warm_up(self) -> None:
        """One read per subject: data keys cached, reply paths and connections open."""
        for index in range(len(self._pairs)):
            await self.read(index)


async def readers(ctx: BenchContext) -> Readers:
    client = await ctx.identity_client()
    customers = await ctx.customers()
    return Readers(client, customers, await customer_tokens(client, customers))


async def _echo(stack: AsyncExitStack, ctx: BenchContext, *, pipelined: bool) -> Operation:
    echo = RawEcho(ctx.kafka, pipelined=pipelined)
    await echo.start()
    stack.push_async_callback(echo.stop)
    # The raw echo carries a request of a read's size class: small, envelope headers included.
    request = Envelope.of(GetSealingKey(), source="/storefront/bench")
    value, headers = request.data, request.headers()

    async def call(_index: int) -> None:
        await echo.call(value, headers)

    for index in range(ECHO_WARM_UP):
        await call(index)
    return call


async def _measure(ctx: BenchContext, named: dict[str, Operation]) -> Figures:
    scale = ctx.scale
    operations = list(named.values())
    rates = await interleaved_throughput(
        operations, count=scale.reads, concurrency=scale.read_concurrency, budget_s=scale.budget_s
    )
    samples = await interleaved_latencies_ms(
        operations, count=scale.read_latency_samples, budget_s=scale.budget_s
    )
    figures: Figures = {"read_concurrency": scale.read_concurrency}
    return figures | rate_and_latency_figures(
        named, rates, samples, expected=scale.reads, notes=ctx.notes
    )


@benchmark(
    "audited_read",
    comparisons=(
        Comparison(f"{OUTBOX}_per_s", f"{SERIAL}_per_s", "audited_read_ratio_to_raw_kafka"),
        Comparison(
            f"{OUTBOX}_per_s", f"{PIPELINED}_per_s", "audited_read_ratio_to_pipelined_raw_kafka"
        ),
        Comparison(f"{OUTBOX}_p50_ms", f"{SERIAL}_p50_ms", "audited_read_p50_ratio_to_raw_kafka"),
        Comparison(
            f"{BROKER}_per_s", f"{SERIAL}_per_s", "audited_read_broker_ack_ratio_to_raw_kafka"
        ),
    ),
    goals=(
        Goal(
            "audited_read_ratio_to_raw_kafka",
            ">=",
            0.5,
            "an audited read costs more than twice a bare Kafka round trip",
        ),
    ),
    timeout_s=150.0,
)
async def audited_read(ctx: BenchContext) -> Figures:
    reads = await readers(ctx)
    identity = await ctx.identity()
    async with AsyncExitStack() as stack:
        producer = ResilientProducer(ctx.kafka, "bench-audit")
        stack.push_async_callback(producer.stop)
        switch = await stack.enter_async_context(_switched_audit(identity))
        outbox, broker = OutboxAudit(), BrokerAckAudit(producer)
        for emitter in (outbox, broker):
            switch.current = emitter
            await reads.warm_up()
        return await _measure(
            ctx,
            {
                OUTBOX: reads.in_mode(switch, outbox),
                BROKER: reads.in_mode(switch, broker),
                SERIAL: await _echo(stack, ctx, pipelined=False),
                PIPELINED: await _echo(stack, ctx, pipelined=True),
            },
        )


def _call_causes(identity: IdentityService) -> tuple[int, int, int]:
    """Counters that explain a Vault call during reads, should one happen."""
    deps = identity.handlers().read_deps
    return (
        deps.crypto.keyring.cache.misses,
        identity.vault.logins,
        deps.callers.verifier.refreshes,
    )


@benchmark(
    "read_vault_calls",
    goals=(Goal("vault_calls_per_1000_reads", "<=", 1.0, "warm reads still reach Vault"),),
)
async def read_vault_calls(ctx: BenchContext) -> Figures:
    reads = await readers(ctx)
    identity = await ctx.identity()
    before_warm_up = identity.vault.calls
    await reads.warm_up()
    warm_up_calls = identity.vault.calls - before_warm_up
    before, causes_before = identity.vault.calls, _call_causes(identity)
    counted = await throughput(
        reads.read,
        count=ctx.scale.vault_reads,
        concurrency=ctx.scale.read_concurrency,
        budget_s=ctx.scale.budget_s,
    )
    steady_calls = identity.vault.calls - before
    if steady_calls:
        causes = [
            now - then for now, then in zip(_call_causes(identity), causes_before, strict=True)
        ]
        ctx.notes.append(
            f"read_vault_calls: {steady_calls} Vault calls in steady reads; key-cache misses "
            f"{causes[0]}, Vault re-logins {causes[1]}, token key reloads {causes[2]}"
        )
    if counted.done < ctx.scale.vault_reads:
        ctx.notes.append(f"read_vault_calls: time budget reached after {counted.done} reads")
    return {
        "vault_calls_per_1000_reads": steady_calls * 1000 / max(1, counted.done),
        "vault_calls_to_warm_up_reads": warm_up_calls,
        "vault_counted_reads": counted.done,
    }
