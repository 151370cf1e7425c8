"""Dead-letter handling for FastStream consumers: bad input never stops a consumer, and is never
lost.

Checks run in a parser (before any handler): size, CloudEvents envelope, JSON, known type. Schema
violations surface from the handler's typed argument. Handler errors are retried with back-off
first. Whatever still fails is published to `<topic>.dlq` with the reason and the original headers,
and only then is the offset committed. If even the dead-letter publish fails, the error escapes, the
message is not acknowledged, and Kafka delivers it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from aiokafka.structs import ConsumerRecord
from faststream import BaseMiddleware
from faststream.exceptions import SubscriberNotFound
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from moment_client.fetching import UnreadableRecord
from moment_contracts.base import Contract
from moment_contracts.envelope import (
    CORRELATION_ID,
    REPLY_TO,
    Envelope,
    EnvelopeError,
    EnvelopeLimits,
    from_kafka,
    header_ok,
)
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.registry import (
    DecodeError,
    MalformedMessage,
    OversizedMessage,
    SchemaViolation,
    UnknownMessageType,
)
from moment_contracts.topics import dlq
from moment_messaging.config import KafkaConfig
from moment_messaging.replies import Replier
from moment_telemetry.metrics import Metrics

log = logging.getLogger(__name__)
ContractT = TypeVar("ContractT", bound=Contract)

_REPLY_CODES = {
    "malformed": ErrorCode.MALFORMED,
    "schema-violation": ErrorCode.SCHEMA_VIOLATION,
    "unknown-type": ErrorCode.UNKNOWN_TYPE,
    "oversized": ErrorCode.OVERSIZED,
    "unauthorised": ErrorCode.UNAUTHORISED,
}


class PermanentError(Exception):
    """A handler failure that retrying cannot fix; it goes straight to the dead-letter topic."""

    reason = "handler-rejected"


def classify(exc: BaseException) -> tuple[str, str]:
    """A stable reason code and a short detail that names no personal data."""
    if isinstance(exc, DecodeError):
        return exc.reason, str(exc)
    if isinstance(exc, ValidationError):
        where = sorted({".".join(map(str, e["loc"])) or "<body>" for e in exc.errors()})
        return "schema-violation", f"{exc.title} invalid at {', '.join(where)}"
    if isinstance(exc, SubscriberNotFound):
        return "unknown-type", "no handler for this message type"
    if isinstance(exc, PermanentError):
        return exc.reason, str(exc)
    return "handler-error", type(exc).__name__


class RejectedRecords(PermanentError):
    """Raised by a batch handler after it processed the rest of its batch: only these records go
    to the dead-letter topic, each with its own reason, and the batch is then acknowledged."""

    def __init__(self, rejected: list[tuple[ConsumerRecord[Any, Any], BaseException]]) -> None:
        super().__init__(f"{len(rejected)} records rejected")
        self.rejected = rejected


def record_bytes(record: ConsumerRecord[Any, Any]) -> int:
    """What the record weighs on the wire, near enough: key, value, header names and values."""
    size = len(record.value or b"") + len(record.key or b"")
    for name, value in record.headers:
        size += len(name) + len(value or b"")
    return size


def check_envelope(
    record: ConsumerRecord[Any, Any], accepted: frozenset[str], max_bytes: int
) -> Envelope:
    """check_record's checks but the JSON one (readable, size, envelope, type), in that order, so
    nothing of an oversized record is parsed; raises DecodeError."""
    if isinstance(record, UnreadableRecord):
        raise MalformedMessage(record.problem)
    size = record_bytes(record)
    if size > max_bytes:
        raise OversizedMessage(f"record of {size} bytes exceeds the limit of {max_bytes}")
    value = record.value or b""
    try:
        envelope = from_kafka(record.headers, value)
    except EnvelopeError as exc:
        raise MalformedMessage(str(exc)) from None
    if envelope.type not in accepted:
        raise UnknownMessageType(f"unsupported type or version {envelope.type!r}")
    return envelope


def _check_json(value: bytes) -> None:
    try:
        json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage("the body is not valid JSON") from None
    except RecursionError:
        raise MalformedMessage("the body is nested too deeply") from None


def check_record(
    record: ConsumerRecord[Any, Any], accepted: frozenset[str], max_bytes: int
) -> Envelope:
    """The parser's checks for one record (size, envelope, type, JSON); raises DecodeError."""
    envelope = check_envelope(record, accepted, max_bytes)
    _check_json(envelope.data)
    return envelope


def validate_body(model: type[ContractT], envelope: Envelope) -> ContractT:
    """The body as `model`, after check_envelope: check_record's JSON check and then the
    schema's, with one parse of a valid body. A body that is not JSON is still "malformed"
    (MalformedMessage), one that breaks the schema a ValidationError."""
    try:
        return model.model_validate_json(envelope.data)
    except ValidationError:
        _check_json(envelope.data)
        raise


def make_parser(
    accepted: frozenset[str], max_bytes: int
) -> Callable[[ConsumerRecord[Any, Any], Callable[..., Awaitable[Any]]], Awaitable[Any]]:
    """A FastStream parser that rejects poison before any handler sees it."""

    async def parse(
        record: ConsumerRecord[Any, Any], original: Callable[..., Awaitable[Any]]
    ) -> Any:
        check_record(record, accepted, max_bytes)
        return await original(record)

    return parse


class DeadLetterPolicy:
    """Shared by every consumer of a service: where dead letters go and how poison is answered."""

    def __init__(self, config: KafkaConfig, consumer: str, metrics: Metrics | None = None) -> None:
        self.config = config
        self.consumer = consumer
        self.metrics = metrics
        self.broker: KafkaBroker | None = None
        self.replier: Replier | None = None
        self.dead_lettered = 0
        # Told of each record before it is dead-lettered, with its reason, so a service can
        # record the refusal (identity audits refused requests). If it raises, the record is
        # neither dead-lettered nor acknowledged, and is delivered again.
        self.on_refused: Callable[[ConsumerRecord[Any, Any], str], Awaitable[None]] | None = None

    def bind(self, broker: KafkaBroker, replier: Replier) -> None:
        self.broker = broker
        self.replier = replier

    def middleware(self) -> Callable[..., BaseMiddleware]:
        policy = self

        def build(msg: Any, /, **kwargs: Any) -> BaseMiddleware:
            return DeadLetterMiddleware(msg, policy=policy, **kwargs)

        return build

    async def dead_letter(self, record: ConsumerRecord[Any, Any], reason: str, detail: str) -> None:
        if self.broker is None:
            raise RuntimeError("DeadLetterPolicy used before bind()")
        value, key, headers = dead_letter_record(record, self.config.max_message_bytes)
        headers.update(
            {
                "dlq_reason": reason,
                "dlq_detail": detail[:500],
                "dlq_consumer": self.consumer,
                "dlq_failed_at": datetime.now(UTC).isoformat(),
            }
        )
        await self.broker.publish(value, topic=dlq(record.topic), key=key, headers=headers)
        self.dead_lettered += 1
        if self.metrics is not None:
            self.metrics.messages_dead_lettered.add(1, {"topic": record.topic, "reason": reason})
        log.warning(
            "message dead-lettered",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason},
        )

    async def reply_error(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        """Requesters get a typed error instead of waiting for a timeout, if the record names a
        well-formed reply topic and correlation id, whatever else is wrong with it."""
        code = _REPLY_CODES.get(reason, ErrorCode.INTERNAL)
        request = _reply_address(record, self.config.max_message_bytes)
        if self.replier is None or request is None:
            return
        await self.replier.send(request, ErrorReply.of(code))


# The body prefix a dead letter keeps of a record too large to copy whole.
DLQ_PREFIX_BYTES = 1024


def dead_letter_record(
    record: ConsumerRecord[Any, Any], max_bytes: int
) -> tuple[bytes, bytes | None, dict[str, str]]:
    """The dead letter's value, key and headers. A record within `max_bytes` is copied whole; a
    larger one keeps a prefix of its body, its size and SHA-256: the dead letter must fit where the
    original didn't, and the original stays addressable by topic, partition and offset. Headers
    are copied bounded (EnvelopeLimits), as text; a header without a value is left out."""
    value = record.value or b""
    whole = record_bytes(record) <= max_bytes and not isinstance(record, UnreadableRecord)
    headers: dict[str, str] = {}
    for name, raw in record.headers[: EnvelopeLimits.MAX_HEADERS] if whole else ():
        if raw is not None:
            headers[name[: EnvelopeLimits.MAX_HEADER_NAME_BYTES]] = raw[
                : EnvelopeLimits.MAX_HEADER_VALUE_BYTES
            ].decode("utf-8", "replace")
    headers.update(
        {
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_original_timestamp": str(record.timestamp),
            "dlq_original_size": str(len(value)),
            "dlq_original_sha256": hashlib.sha256(value).hexdigest(),
            "dlq_truncated": "false" if whole else "true",
        }
    )
    key = record.key if whole or record.key is None else record.key[:DLQ_PREFIX_BYTES]
    return (value if whole else value[:DLQ_PREFIX_BYTES]), key, headers


def _reply_address(record: ConsumerRecord[Any, Any], max_bytes: int) -> Envelope | None:
    """Where a refusal may be answered: a well-formed reply_to and correlation id (or ce_id).
    The request's id, source, type and body go along as they came (the body only within the size
    limit), so a service that authenticates its replies (identity's reply MACs) can answer for
    exactly what the requester sent."""
    first: dict[str, bytes | None] = {}
    for name, raw in record.headers[: EnvelopeLimits.MAX_HEADERS]:
        if name in (REPLY_TO, CORRELATION_ID, "ce_id", "ce_source", "ce_type"):
            first.setdefault(name, raw)
    found: dict[str, str] = {}
    for name, raw in first.items():
        text = raw.decode("utf-8", "replace") if type(raw) is bytes else ""
        if header_ok(name, text):
            found[name] = text
    # The requester waits on its correlation id: a malformed one can't be answered at all.
    correlation = found.get(CORRELATION_ID) if CORRELATION_ID in first else found.get("ce_id")
    if REPLY_TO not in found or correlation is None:
        return None
    extra = {REPLY_TO: found[REPLY_TO], CORRELATION_ID: correlation}
    value = record.value if type(record.value) is bytes else b""
    return Envelope(
        type=_as_sent(first.get("ce_type")),
        source=_as_sent(first.get("ce_source")),
        id=_as_sent(first.get("ce_id")),
        data=value if len(value) <= max_bytes else b"",
        extra=extra,
    )


def _as_sent(raw: bytes | None) -> str:
    """An attribute as the requester sent it (past its own rule, perhaps, but bounded)."""
    if type(raw) is not bytes or not raw or len(raw) > EnvelopeLimits.MAX_HEADER_VALUE_BYTES:
        return "-"
    return raw.decode("utf-8", "replace")


class DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, policy: DeadLetterPolicy, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self.policy = policy

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        retries = self.policy.config.handler_retries
        for attempt in range(retries + 1):
            try:
                return await call_next(msg)
            except (DecodeError, ValidationError, SchemaViolation, PermanentError):
                raise
            except Exception:
                if attempt == retries:
                    raise
                log.warning("handler failed, retrying", extra={"attempt": attempt + 1})
                await asyncio.sleep(self.policy.config.retry_backoff_ms / 1000 * 2**attempt)
        return None

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,  # noqa: ARG002 - FastStream's signature
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,  # noqa: ARG002
    ) -> bool | None:
        if exc_val is None or not isinstance(exc_val, Exception):
            return False
        if isinstance(exc_val, RejectedRecords):
            for record, rejection in exc_val.rejected:
                await self._dead_letter(record, rejection)
            return True
        # A batch subscriber's message is the tuple of its records: each is dead-lettered.
        for record in self.msg if isinstance(self.msg, tuple) else (self.msg,):
            await self._dead_letter(record, exc_val)
        return True

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        reason, detail = classify(exc)
        if self.policy.on_refused is not None:
            await self.policy.on_refused(record, reason)
        await self.policy.dead_letter(record, reason, detail)
        await self.policy.reply_error(record, reason)
