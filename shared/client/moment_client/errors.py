"""Typed errors a storefront service can catch."""

from __future__ import annotations

from moment_contracts.errors import ErrorCode, ErrorReply


class MomentClientError(Exception):
    """Base of every error this client raises."""


class RequestTimeout(MomentClientError):
    """No reply within the timeout. Retry with the same request id: requests are idempotent."""

    code = ErrorCode.TIMEOUT

    def __init__(self, topic: str, timeout_s: float, request_id: str) -> None:
        super().__init__(f"no reply on {topic} within {timeout_s:g}s (request {request_id})")
        self.request_id = request_id


class ServiceError(MomentClientError):
    """The service answered with a typed error reply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.message_en}")
        self.reply = reply
        self.code = reply.code


class UnexpectedReply(MomentClientError):
    """The reply's type is not the one the request expects."""
