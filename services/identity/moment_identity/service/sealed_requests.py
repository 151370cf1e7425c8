"""Requests whose sealed boxes were not sealed for them, or that were already used.

Every box is bound to the request carrying it (`adapters/sealing.py`). A box that doesn't open for
its request, or is out of its time window, and a read whose id was already served, are refused
with a typed error and audited as a denial, whatever the request type: whoever sends them is
replaying or recombining captured requests. Requests the inbox remembers are answered from it when
resent (the stored reply, sealed to the original reply key); reads are not stored, so their ids
are claimed here instead.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_identity.adapters.request_ids import SqlRequestIds
from moment_identity.adapters.sealing import SealedBoxRefused, StaleSealedBox
from moment_identity.domain.errors import IdentityError
from moment_identity.service.refusals import AUDITED_ACTIONS
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]
Work = Callable[[], Awaitable[Step]]

_PRUNE_EVERY = 256

log = logging.getLogger(__name__)


class ReplayedRequest(IdentityError):
    """A request id that was already served."""

    def __init__(self) -> None:
        super().__init__("this request id was already used")


def refusal_code(exc: SealedBoxRefused | ReplayedRequest) -> ErrorCode:
    if isinstance(exc, ReplayedRequest):
        return ErrorCode.REPLAYED_REQUEST
    if isinstance(exc, StaleSealedBox):
        return ErrorCode.STALE_REQUEST
    # As for any credentials that don't check out: which check failed is not said.
    return ErrorCode.UNAUTHORISED if exc.field == "sealed_credentials" else ErrorCode.MALFORMED


@dataclass(frozen=True)
class RequestGuard:
    """`retention_s`: how long a used read id is kept, at least the boxes' whole window."""

    retention_s: float
    _claims: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def guard(self, request: Envelope, body: Contract, work: Work, *, once: bool = False) -> Work:
        """`work` with its box refusals audited; with `once`, also refused when already used."""

        async def guarded() -> Step:
            try:
                step = await work()
            except SealedBoxRefused as exc:
                return _refusal(request, body, exc)

            async def run(uow: IdentityUnitOfWork) -> Contract:
                if once and not await self._claim(uow, request):
                    return await _refusal(request, body, ReplayedRequest())(uow)
                try:
                    return await step(uow)
                except SealedBoxRefused as exc:  # boxes opened inside the step (credentials)
                    return await _refusal(request, body, exc)(uow)

            return run

        return guarded

    async def _claim(self, uow: IdentityUnitOfWork, request: Envelope) -> bool:
        ids = SqlRequestIds(uow.session)
        now = datetime.now(UTC)
        if next(self._claims) % _PRUNE_EVERY == 0:
            await ids.prune(now - timedelta(seconds=self.retention_s))
        return await ids.claim(request.source, request.id, now)


def _refusal(request: Envelope, body: Contract, exc: SealedBoxRefused | ReplayedRequest) -> Step:
    """Returned, not raised, so the denial's audit record commits (and the inbox keeps it)."""
    subject_id = getattr(body, "subject_id", None)
    purpose = getattr(body, "purpose", None)
    event = audit_event(
        action=AUDITED_ACTIONS.get(body.ce_type, "read"),
        subject_id=subject_id if isinstance(subject_id, str) else "unknown",
        # Nobody is authenticated by a box that was refused.
        actor_id="anonymous",
        actor_role="unknown",
        fields=tuple(str(name) for name in getattr(body, "fields", ())),
        outcome="denied",
        purpose=purpose if isinstance(purpose, str) else None,
        request_id=request.id,
    )

    code = refusal_code(exc)

    async def refuse(uow: IdentityUnitOfWork) -> Contract:
        uow.audit(event)
        # Ids and codes only: what replaying or recombining captured requests looks like.
        log.warning(
            "sealed request refused",
            extra={"type": request.type, "request_id": request.id, "code": str(code)},
        )
        return ErrorReply.of(code)

    return refuse
