"""How long a token identity revoked stays usable at audit, beside a raw Kafka round trip.

Each sample creates a staff account (privacy officer) in the identity service running in this
process, signs a token for it as a staff login would, checks that audit's query API accepts it,
then deactivates the account (`StaffAdmin.deactivate`: one transaction that raises the session
version and writes `PrincipalTokensRevoked` to the outbox). The clock starts when that commit
returns and stops when audit.commands first answers the old token `unauthorised`, the token being
replayed back to back: identity's outbox relay, identity.events, audit's revocation feed and its
`revocations` table, and one query round trip. Account creation (argon2) is not timed. The first
deactivation also waits for audit's feed to join its consumer group: it is a warm-up, not a
sample.

`raw_kafka_roundtrip_p50_ms` is the serial bare-aiokafka echo of benchmarks/raw_kafka.py
(request, echo, reply, each produce acknowledged), measured in the same run.
"""

from __future__ import annotations

import secrets
import time
import uuid

from benchmarks.audit import audit_service
from benchmarks.context import BenchContext
from benchmarks.measure import latencies_ms, percentile
from benchmarks.raw_kafka import RawEcho
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_auth.principals import Principal, Role
from moment_auth.tokens import TokenSigner
from moment_client.audit import AuditClient
from moment_client.errors import ServiceError
from moment_contracts.errors import ErrorCode
from moment_identity.bootstrap import IdentityService
from moment_identity.service.principals import StaffAdmin

# The warm-up waits for the feed's consumer group to form; a sample for the event itself.
WARM_UP_TIMEOUT_S = 60.0
SAMPLE_TIMEOUT_S = 30.0
ECHO_SAMPLES = 50


class RevokedTokenStillAccepted(TimeoutError):
    """Audit still accepted a revoked token when the benchmark gave up waiting."""


class StaffFactory:
    def __init__(self, identity: IdentityService) -> None:
        crypto = identity.handlers().crypto
        self._admin = StaffAdmin(crypto.indexer, crypto.hasher, identity.unit_of_work)
        self._signer = TokenSigner(identity.vault)

    async def token(self) -> tuple[str, str, str]:
        """(username, token, a subject to ask about) for a fresh privacy officer."""
        username = f"bench_revoke_{secrets.token_hex(5)}"
        roles = (Role.PRIVACY_OFFICER,)
        staff_id = await self._admin.create(username, secrets.token_urlsafe(16), roles)
        issued = await self._signer.issue(Principal.staff(staff_id, roles))
        return username, issued.token, str(uuid.uuid4())

    async def deactivate(self, username: str) -> None:
        await self._admin.deactivate(username)


async def _refused(client: AuditClient, token: str, subject_id: str) -> bool:
    try:
        await client.access_history(token, subject_id=subject_id, limit=1)
    except ServiceError as exc:
        if exc.code != ErrorCode.UNAUTHORISED:
            raise
        return True
    return False


async def _propagation_ms(staff: StaffFactory, client: AuditClient, timeout_s: float) -> float:
    username, token, subject_id = await staff.token()
    if await _refused(client, token, subject_id):
        raise RevokedTokenStillAccepted("audit refused a valid token before its revocation")
    await staff.deactivate(username)
    started = time.perf_counter()
    while not await _refused(client, token, subject_id):
        if time.perf_counter() - started > timeout_s:
            raise RevokedTokenStillAccepted(f"a revoked token was accepted for {timeout_s:g}s")
    return (time.perf_counter() - started) * 1000


async def _raw_roundtrips(ctx: BenchContext) -> list[float]:
    echo = RawEcho(ctx.kafka, pipelined=False)
    await echo.start()
    try:
        await echo.call(b"warm-up", [], timeout_s=WARM_UP_TIMEOUT_S)
        return await latencies_ms(
            lambda _index: echo.call(b"x" * 200, []),
            count=ECHO_SAMPLES,
            budget_s=ctx.scale.budget_s,
        )
    finally:
        await echo.stop()


@benchmark(
    "revocation",
    comparisons=(
        Comparison(
            "revocation_propagation_ms",
            "raw_kafka_roundtrip_p50_ms",
            "revocation_propagation_ratio_to_raw_kafka",
        ),
    ),
    goals=(
        Goal(
            "revocation_propagation_max_ms",
            "<=",
            5_000,
            "a revoked or erased principal's token stays usable at audit for seconds",
        ),
    ),
    timeout_s=180.0,
)
async def revocation(ctx: BenchContext) -> Figures:
    staff = StaffFactory(await ctx.identity())
    client = AuditClient(await ctx.request_client())
    service = await audit_service(ctx, await ctx.databases.create("bench_revocation"))
    try:
        await _propagation_ms(staff, client, WARM_UP_TIMEOUT_S)
        samples: list[float] = []
        deadline = time.perf_counter() + ctx.scale.budget_s
        for _ in range(ctx.scale.revocations):
            if time.perf_counter() >= deadline:
                ctx.notes.append(f"revocation: time budget reached after {len(samples)} samples")
                break
            samples.append(await _propagation_ms(staff, client, SAMPLE_TIMEOUT_S))
    finally:
        await service.stop()
    raw = await _raw_roundtrips(ctx)
    return {
        "revocation_propagation_ms": percentile(samples, 50),
        "revocation_propagation_max_ms": max(samples, default=0.0),
        "revocation_samples": len(samples),
        "raw_kafka_roundtrip_p50_ms": percentile(raw, 50),
    }
