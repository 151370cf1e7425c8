"""The audit record of an attempt refused before its step could record one.

A step records its own refusals (a failed login, a denied read) in its transaction. Everything else
that refuses a request touching personal data is audited here, in a transaction of its own: errors
raised before or in the step (a sealed box that doesn't open, a field that fails validation, a
conflict, an unknown caller), a success whose request id the inbox couldn't store, and records the
dead-letter policy refused before any handler ran (an envelope or body that breaks its schema).

Such a request may be invalid in every part, so only what is safely bounded is kept: the action its
type stands for, the request id (or a digest of it), the outcome and the names of the fields at
fault. Never a value, never the attacker's own words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import Login, RecordGuardianConsent, RegisterUser
from moment_contracts.principals import ServiceLogin, StaffLogin
from moment_contracts.profile import (
    ErasePersonalData,
    ExportPersonalData,
    ReadPersonalData,
    UpdatePersonalData,
)
from moment_contracts.recovery import AnswerRecovery, StartRecovery
from moment_contracts.topics import IDENTITY_COMMANDS
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

log = logging.getLogger(__name__)

# Every identity request that reads, changes or proves personal data, as the audit action it is.
AUDITED_ACTIONS: dict[str, str] = {
    RegisterUser.ce_type: "create",
    Login.ce_type: "login",
    StaffLogin.ce_type: "login",
    ServiceLogin.ce_type: "login",
    StartRecovery.ce_type: "recovery",
    AnswerRecovery.ce_type: "recovery",
    ReadPersonalData.ce_type: "read",
    UpdatePersonalData.ce_type: "write",
    RecordGuardianConsent.ce_type: "write",
    ExportPersonalData.ce_type: "export",
    ErasePersonalData.ce_type: "erase",
}
# Refusals of who is asking; the rest (bad input, conflicts, outages) are failures.
DENIALS = frozenset(
    {
        ErrorCode.UNAUTHORISED,
        ErrorCode.ACCESS_DENIED,
        ErrorCode.LOCKED_OUT,
        ErrorCode.REPLAYED_REQUEST,
    }
)
DENIAL_REASONS = frozenset({"unauthorised"})
# Field names the service itself writes into an error; anything else is not repeated.
_FIELD_NAME = re.compile(r"[a-z][a-z_]{0,39}")
_UNKNOWN = "unknown"


class Record(Protocol):
    """What is read of a Kafka record (aiokafka's ConsumerRecord) that was dead-lettered."""

    @property
    def topic(self) -> str: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class RefusalAudit:
    uow_factory: Callable[[], IdentityUnitOfWork]

    async def refused(self, request: Envelope, error: ErrorReply) -> None:
        """RequestProcessor's on_refused: a request answered by a refusal no step recorded."""
        action = AUDITED_ACTIONS.get(request.type)
        if action is None:
            return
        outcome = "denied" if error.code in DENIALS else "failure"
        names = sorted({f.field for f in error.fields if _FIELD_NAME.fullmatch(f.field)})
        await self._write(action, request.id, outcome, tuple(names))

    async def dead_lettered(self, record: Record, reason: str) -> None:
        """DeadLetterPolicy's on_refused: a request refused before any handler ran."""
        if record.topic != IDENTITY_COMMANDS:
            return
        headers = _headers(record)
        action = AUDITED_ACTIONS.get(headers.get("ce_type", ""))
        if action is None:
            return
        outcome = "denied" if reason in DENIAL_REASONS else "failure"
        await self._write(action, headers.get("ce_id"), outcome, ())

    async def _write(
        self, action: str, request_id: str | None, outcome: str, fields: tuple[str, ...]
    ) -> None:
        event = audit_event(
            action=action,
            subject_id=_UNKNOWN,
            actor_id="anonymous",
            actor_role=_UNKNOWN,
            fields=fields,
            outcome=outcome,
            purpose=None,
            request_id=request_id or None,
        )
        async with self.uow_factory() as uow:
            uow.audit(event)
            await uow.commit()
        log.info(
            "refused attempt audited",
            extra={"action": action, "outcome": outcome, "request_id": event.request_id},
        )


def _headers(record: Record) -> dict[str, str]:
    """The two headers looked at, whatever else is wrong with the record (null, not UTF-8)."""
    found: dict[str, str] = {}
    for name, value in record.headers or ():
        if name in {"ce_type", "ce_id"} and isinstance(value, bytes) and name not in found:
            found[name] = value.decode("utf-8", "replace")
    return found
