"""Serving requests exactly once in effect: at-least-once delivery, idempotent processing, one
reply.

A request is processed inside a unit of work that also records its id and its reply in the inbox. A
redelivered request (same CloudEvents source and id, same body bytes) gets the stored reply again
and changes nothing; the same id on other bytes is refused `replayed-request`, so a stored reply
never answers a request it was not made for. Errors a caller should see become typed error
replies; the rest escape to the dead-letter policy after retries.

What an attempt must leave behind (failure counters, lockouts, the audit record of a refusal) never
depends on whether its reply can be stored: if the inbox row can't be written for any reason but
losing the race for it, a refusal is committed without it (so each copy of the request counts
again, and none goes uncounted), and a success is rolled back and refused instead (nothing is
released that a replay could not be recognised by).
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
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.reply_mac import request_digest
from moment_messaging.inbox import Inbox, StoredReply
from moment_messaging.replies import Replier
from moment_persistence.errors import DatabaseUnavailable, IntegrityViolation
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
Step = Callable[[U], Awaitable[Contract]]
# Told of every request answered by a refusal that its step did not record (a raised error, or a
# success whose reply couldn't be stored), so the service can audit the attempt in a transaction
# of its own. It may raise: the request is then retried and dead-lettered, never answered unaudited.
OnRefused = Callable[[Envelope, ErrorReply], Awaitable[None]]


class ReplyNotStored(Exception):
    """The step ran, but its transaction failed on recording the request and its reply (not on
    losing the inbox race): e.g. a request id longer than the inbox can hold."""

    def __init__(self, reply: Contract, cause: BaseException) -> None:
        super().__init__(f"the reply could not be stored ({type(cause).__name__})")
        self.reply = reply


class RequestProcessor(Generic[U]):
    def __init__(
        self,
        uow_factory: Callable[[], U],
        inbox: Inbox,
        replier: Replier,
        to_error: Callable[[Exception], ErrorReply | None],
        metrics: Metrics | None = None,
        on_refused: OnRefused | None = None,
    ) -> None:
        self._metrics = metrics
        self._on_refused = on_refused
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
        step = await self._work_or_refusal(request, work, started)
        if step is None:
            return
        try:
            reply = await self._process(request, step, remember=remember)
        except ReplyNotStored as exc:
            reply = await self._unstored(request, step, exc)
        except Exception as exc:  # noqa: BLE001 - _refusal re-raises what maps to no reply
            # A redelivered copy processed concurrently won the inbox row: answer as it did.
            if isinstance(exc, IntegrityViolation) and (stored := await self._stored(request)):
                await self._resend(request, stored)
                self._measure(request, "replayed", started)
                return
            reply = await self._refusal(request, exc, started)
        await self._replier.send(request, reply)
        self._measure(request, getattr(reply, "code", "ok"), started)

    async def _work_or_refusal(
        self,
        request: Envelope,
        work: Callable[[], Awaitable[Step[U]]],
        started: float,
    ) -> Step[U] | None:
        """The step `work()` returns, or None once a refusal raised by `work()` was answered."""
        try:
            return await work()
        except Exception as exc:  # noqa: BLE001 - _refusal re-raises what maps to no reply
            error = await self._refusal(request, exc, started)
            await self._replier.send(request, error)
            self._measure(request, error.code, started)
            return None

    async def _refusal(self, request: Envelope, exc: Exception, started: float) -> ErrorReply:
        """The typed reply for a raised refusal, audited first; re-raises what maps to none."""
        error = self._to_error(exc)
        if error is None:
            self._measure(request, "failed", started)
            raise exc
        log.info("request refused", extra={"code": error.code, "type": request.type})
        await self._refused(request, error)
        return error

    async def _refused(self, request: Envelope, error: ErrorReply) -> None:
        if self._on_refused is not None:
            await self._on_refused(request, error)

    async def _unstored(self, request: Envelope, step: Step[U], exc: ReplyNotStored) -> Contract:
        """The inbox couldn't take this request: keep what a refusal recorded, release nothing."""
        log.warning(
            "request not recorded in the inbox",
            extra={"type": request.type, "error": str(exc)},
        )
        if isinstance(exc.reply, ErrorReply):
            # Counters, lockouts and the audit record commit without the stored reply; a copy
            # of this request is then simply another attempt, counted again.
            return await self._process(request, step, remember=False)
        refusal = ErrorReply.of(ErrorCode.MALFORMED)
        await self._refused(request, refusal)
        return refusal

    def _measure(self, request: Envelope, outcome: str, started: float) -> None:
        if self._metrics is None:
            return
        attributes = {"operation": request.type, "outcome": str(outcome)}
        self._metrics.requests_served.add(1, attributes)
        self._metrics.request_duration_seconds.record(time.perf_counter() - started, attributes)

    async def _process(self, request: Envelope, step: Step[U], *, remember: bool) -> Contract:
        async with self._uow_factory() as uow:
            # Constraint violations surface at the statement, not only at COMMIT: translate both.
            with uow.errors():
                reply = await step(uow)
            if remember:
                await self._remember(uow, request, reply)
            else:
                await uow.commit()
        log.info("request served", extra={"type": request.type, "request_id": request.id})
        return reply

    async def _remember(self, uow: U, request: Envelope, reply: Contract) -> None:
        """Record the request and its reply, and commit; raises ReplyNotStored unless the failure
        is losing the inbox race (IntegrityViolation) or the database being away."""
        stored = StoredReply(
            type=reply.ce_type,
            body=reply.model_dump_json().encode(),
            request_digest=request_digest(request.data),
        )
        try:
            with uow.errors():
                await self._inbox.record(uow.session, request, stored)
                await uow.commit()
        except (IntegrityViolation, DatabaseUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised, typed; its text may quote values
            raise ReplyNotStored(reply, exc) from None

    async def _stored(self, request: Envelope) -> StoredReply | None:
        async with self._uow_factory() as uow:
            seen = await self._inbox.seen(uow.session, request)
        return seen if isinstance(seen, StoredReply) else None

    async def _resend(self, request: Envelope, stored: StoredReply) -> None:
        if stored.request_digest not in (None, request_digest(request.data)):
            # The id of a request already served, on other bytes: not a redelivery or a retry
            # of it (those send the same bytes). Whoever sent it is told, and the stored reply
            # is not sent for a request it wasn't made for.
            refusal = ErrorReply.of(ErrorCode.REPLAYED_REQUEST)
            log.warning("request id reused with another body", extra={"type": request.type})
            await self._refused(request, refusal)
            await self._replier.send(request, refusal)
            return
        log.info("redelivered request answered from the inbox", extra={"type": request.type})
        reply = Envelope(
            type=stored.type, source=self._replier.source, data=stored.body, subject=request.subject
        )
        await self._replier.send_envelope(request, reply)
