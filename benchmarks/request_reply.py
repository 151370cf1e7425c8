"""Request/reply through our layer (RequestClient -> identity's GetSealingKey) vs bare Kafka echoes.

GetSealingKey replies without touching the database, so the figure is the messaging layer itself:
envelopes, tracing, FastStream dispatch and the reply path. The raw echoes send the very same
request bytes and headers over the same broker. The pipelined echo is the transport's ceiling;
the serial echo handles one record at a time as identity's subscriber does, so the ratio to it
is the per-message cost of the layer alone.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from benchmarks.context import BenchContext
from benchmarks.measure import (
    Operation,
    interleaved_latencies_ms,
    interleaved_throughput,
    rate_and_latency_figures,
)
from benchmarks.raw_kafka import RawEcho
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.identity import GetSealingKey, SealingKey

WARM_UP = 20
OURS = "request_reply"
RAW = "raw_kafka_roundtrip"
SERIAL = "raw_kafka_serial_roundtrip"


async def _echo_operation(
    stack: AsyncExitStack, ctx: BenchContext, *, pipelined: bool
) -> Operation:
    echo = RawEcho(ctx.kafka, pipelined=pipelined)
    await echo.start()
    stack.push_async_callback(echo.stop)
    request = Envelope.of(GetSealingKey(), source="/storefront/bench")
    value, headers = request.data, request.headers()

    async def call(_index: int) -> None:
        await echo.call(value, headers)

    return call


async def _measure(ctx: BenchContext, named: dict[str, Operation]) -> Figures:
    scale = ctx.scale
    operations = list(named.values())
    for operation in operations:
        for index in range(WARM_UP):
            await operation(index)
    rates = await interleaved_throughput(
        operations,
        count=scale.roundtrips,
        concurrency=scale.roundtrip_concurrency,
        budget_s=scale.budget_s,
    )
    samples = await interleaved_latencies_ms(
        operations, count=scale.latency_samples, budget_s=scale.budget_s
    )
    return dict(
        rate_and_latency_figures(named, rates, samples, expected=scale.roundtrips, notes=ctx.notes)
    )


@benchmark(
    "request_reply",
    comparisons=(
        Comparison(f"{OURS}_per_s", f"{RAW}_per_s", "request_reply_ratio_to_raw_kafka"),
        Comparison(f"{OURS}_per_s", f"{SERIAL}_per_s", "request_reply_ratio_to_serial_echo"),
        Comparison(f"{OURS}_p50_ms", f"{RAW}_p50_ms", "request_reply_p50_ratio_to_raw_kafka"),
        Comparison(f"{OURS}_p99_ms", f"{RAW}_p99_ms", "request_reply_p99_ratio_to_raw_kafka"),
    ),
    goals=(
        Goal("request_reply_ratio_to_serial_echo", ">=", 0.5, "the layer halves throughput"),
        Goal("request_reply_p99_ms", "<=", 100.0, "interactive calls would feel slow"),
    ),
)
async def request_reply(ctx: BenchContext) -> Figures:
    client = await ctx.request_client()

    async def ours(_index: int) -> None:
        await client.request(topics.IDENTITY_COMMANDS, GetSealingKey(), SealingKey)

    async with AsyncExitStack() as stack:
        return await _measure(
            ctx,
            {
                OURS: ours,
                RAW: await _echo_operation(stack, ctx, pipelined=True),
                SERIAL: await _echo_operation(stack, ctx, pipelined=False),
            },
        )
