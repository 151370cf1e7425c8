"""Typed error replies: a stable code, and a message in English and Arabic for the storefront to
show.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from moment_contracts.base import Contract


class ErrorCode(StrEnum):
    MALFORMED = "malformed"
    SCHEMA_VIOLATION = "schema-violation"
    UNKNOWN_TYPE = "unknown-type"
    OVERSIZED = "oversized"
    UNAUTHORISED = "unauthorised"
    VALIDATION_FAILED = "validation-failed"
    CONFLICT = "conflict"
    NOT_FOUND = "not-found"
    UNAVAILABLE = "unavailable"
    AUDIT_UNAVAILABLE = "audit-unavailable"
    INTERNAL = "internal"
    TIMEOUT = "timeout"
    LOGIN_FAILED = "login-failed"
    RECOVERY_FAILED = "recovery-failed"
    LOCKED_OUT = "locked-out"
    GUARDIAN_CONSENT_REQUIRED = "guardian-consent-required"
    ACCESS_DENIED = "access-denied"
    SEALING_KEY_ROTATED = "sealing-key-rotated"
    STALE_REQUEST = "stale-request"
    REPLAYED_REQUEST = "replayed-request"


MESSAGES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.MALFORMED: ("The message could not be read.", "تعذّرت قراءة الرسالة."),
    ErrorCode.SCHEMA_VIOLATION: (
        "The message does not match its schema.",
        "الرسالة لا تطابق المخطط المعتمد.",
    ),
    ErrorCode.UNKNOWN_TYPE: (
        "This message type or version is not supported.",
        "نوع الرسالة أو إصدارها غير مدعوم.",
    ),
    ErrorCode.OVERSIZED: ("The message is too large.", "حجم الرسالة أكبر من المسموح."),
    ErrorCode.UNAUTHORISED: ("You are not allowed to do this.", "غير مصرّح لك بهذا الإجراء."),
    ErrorCode.VALIDATION_FAILED: ("Some fields are not valid.", "بعض الحقول غير صالحة."),
    ErrorCode.CONFLICT: (
        "This conflicts with existing data.",
        "يتعارض هذا الطلب مع بيانات موجودة.",
    ),
    ErrorCode.NOT_FOUND: ("Nothing was found.", "لم يُعثر على شيء."),
    ErrorCode.UNAVAILABLE: (
        "The service is temporarily unavailable. Try again shortly.",
        "الخدمة غير متاحة مؤقتًا. حاول مرة أخرى بعد قليل.",
    ),
    ErrorCode.AUDIT_UNAVAILABLE: (
        "The access could not be audited, so it was refused.",
        "تعذّر تسجيل الوصول في سجل التدقيق، لذا رُفض الطلب.",
    ),
    ErrorCode.INTERNAL: ("Something went wrong on our side.", "حدث خطأ من جهتنا."),
    ErrorCode.TIMEOUT: ("No reply arrived in time.", "لم يصل الرد في الوقت المحدد."),
    # One message for every login failure: which part was wrong is never said.
    ErrorCode.LOGIN_FAILED: (
        "The username, e-mail or password is not correct.",
        "اسم المستخدم أو البريد الإلكتروني أو كلمة المرور غير صحيحة.",
    ),
    # One message for every recovery failure: unknown account, wrong answer or wrong code alike.
    ErrorCode.RECOVERY_FAILED: (
        "The account details, answer or code are not correct.",
        "بيانات الحساب أو الإجابة أو الرمز غير صحيحة.",
    ),
    ErrorCode.LOCKED_OUT: (
        "Too many failed attempts. Try again later.",
        "محاولات فاشلة كثيرة. حاول مرة أخرى لاحقًا.",
    ),
    ErrorCode.SEALING_KEY_ROTATED: (
        "Identity's sealing key has changed. Fetch it again and resend.",
        "تغيّر مفتاح التشفير لدى خدمة الهوية. اجلبه من جديد وأعد الإرسال.",
    ),
    ErrorCode.STALE_REQUEST: (
        "This request is too old or its clock is wrong. Send it again.",
        "هذا الطلب قديم جدًا أو أن ساعته غير مضبوطة. أعد إرساله.",
    ),
    ErrorCode.REPLAYED_REQUEST: (
        "This request was already used and cannot be sent again.",
        "استُخدم هذا الطلب من قبل ولا يمكن إرساله مرة أخرى.",
    ),
    ErrorCode.ACCESS_DENIED: (
        "You may not read or change this data for this purpose.",
        "لا يحق لك قراءة هذه البيانات أو تعديلها لهذا الغرض.",
    ),
    ErrorCode.GUARDIAN_CONSENT_REQUIRED: (
        "This account needs a guardian's consent before it can be used.",
        "يحتاج هذا الحساب إلى موافقة ولي الأمر قبل استخدامه.",
    ),
}


class FieldError(Contract):
    """One invalid field, by name only: the offending value is never echoed back."""

    ce_type: ClassVar[str] = "moment.error.field.v1"

    field: str
    code: str
    message_en: str
    message_ar: str


class ErrorReply(Contract):
    ce_type: ClassVar[str] = "moment.error.v1"

    code: ErrorCode
    message_en: str
    message_ar: str
    retryable: bool = False
    fields: tuple[FieldError, ...] = Field(default_factory=tuple)
    retry_after_s: int | None = Field(default=None, ge=0)

    @classmethod
    def of(cls, code: ErrorCode, **extra: Any) -> ErrorReply:
        en, ar = MESSAGES[code]
        retryable = code in {
            ErrorCode.UNAVAILABLE,
            ErrorCode.AUDIT_UNAVAILABLE,
            ErrorCode.TIMEOUT,
            ErrorCode.SEALING_KEY_ROTATED,
        }
        return cls(code=code, message_en=en, message_ar=ar, retryable=retryable, **extra)
