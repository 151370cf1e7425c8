"""Serving requests exactly once in effect: at-least-once delivery, idempotent processing, one
reply.

A request is processed inside a unit of work that also records its id and its reply in the inbox. A
redelivered request (same CloudEvents source and id) gets the stored reply again and changes
nothing. Errors a caller should see become typed error replies; the rest escape to the dead-letter
policy after retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorReply
from moment_messaging.inbox import Inbox, StoredReply
from moment_messaging.replies import Replier
from moment_persistence.errors import IntegrityViolation
from moment_telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class UnitOfWork(Protocol):
    @property
    def session(self) -> AsyncSession: ...

    async def commit(self) -> None: ...

    def errors(self) -> AbstractContextManager[None]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


U = TypeVar("U", bound=UnitOfWork)


class RequestProcessor(Generic[U]):
    def __init__(
        self,
        uow_factory: Callable[[], U],
        inbox: Inbox,
        replier: Replier,
        to_error: Callable[[Exception], ErrorReply | None],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._uow_factory = uow_factory
        self._inbox = inbox
        self._replier = replier
        self._to_error = to_error

    async def handle(
        self,
        request: Envelope,
        work: Callable[[], Awaitable[Callable[[U], Awaitable[Contract]]]],
        *,
        remember: bool = True,
    ) -> None:
        """`work()` does the slow part (crypto, hashing) outside any transaction and returns the
        step that writes; that step runs inside the unit of work, so locks are held briefly.

        `remember=False` is for requests that change nothing but their audit trail (reads): a
        redelivered read is simply a second read, audited as such, so the inbox is skipped."""
        started = time.perf_counter()
        stored = await self._stored(request) if remember else None
        if stored is not None:
            await self._resend(request, stored)
            self._measure(request, "replayed", started)
            return
        try:
            reply = await self._process(request, await work(), remember=remember)
        except Exception as exc:
            # A redelivered copy processed concurrently won the inbox row: answer as it did.
            if isinstance(exc, IntegrityViolation) and (stored := await self._stored(request)):
                await self._resend(request, stored)
                self._measure(request, "replayed", started)
                return
            error = self._to_error(exc)
            if error is None:
                self._measure(request, "failed", started)
                raise
            log.info("request refused", extra={"code": error.code, "type": request.type})
            reply = error
        await self._replier.send(request, reply)
        self._measure(request, getattr(reply, "code", "ok"), started)

    def _measure(self, request: Envelope, outcome: str, started: float) -> None:
        if self._metrics is None:
            return
        attributes = {"operation": request.type, "outcome": str(outcome)}
        self._metrics.requests_served.add(1, attributes)
        self._metrics.request_duration_seconds.record(time.perf_counter() - started, attributes)

    async def _process(
        self, request: Envelope, work: Callable[[U], Awaitable[Contract]], *, remember: bool
    ) -> Contract:
        async with self._uow_factory() as uow:
            # Constraint violations surface at the statement, not only at COMMIT: translate both.
            with uow.errors():
                reply = await work(uow)
            if remember:
                stored = StoredReply(type=reply.ce_type, body=reply.model_dump_json().encode())
                await self._inbox.record(uow.session, request, stored)
            await uow.commit()
        log.info("request served", extra={"type": request.type, "request_id": request.id})
        return reply

    async def _stored(self, request: Envelope) -> StoredReply | None:
        async with self._uow_factory() as uow:
            seen = await self._inbox.seen(uow.session, request)
        return seen if isinstance(seen, StoredReply) else None

    async def _resend(self, request: Envelope, stored: StoredReply) -> None:
        log.info("redelivered request answered from the inbox", extra={"type": request.type})
        reply = Envelope(
            type=stored.type, source=self._replier.source, data=stored.body, subject=request.subject
        )
        await self._replier.send_envelope(request, reply)
