"""Mapping failures to typed error replies (English and Arabic). Values are never echoed back."""

from __future__ import annotations

from moment_contracts.errors import ErrorCode, ErrorReply, FieldError
from moment_crypto.errors import CryptoError
from moment_identity.adapters.audit_emitter import AuditUnavailable
from moment_identity.adapters.sealing import SealingKeyRotated
from moment_identity.domain.errors import AccountExists, RegistrationRejected, SealedInputRejected
from moment_identity.service.callers import NotAuthenticated
from moment_persistence.errors import DatabaseUnavailable, UniqueViolation

FIELD_MESSAGES: dict[str, tuple[str, str]] = {
    "length": ("The length is not allowed.", "الطول غير مسموح به."),
    "format": ("The format is not valid.", "الصيغة غير صحيحة."),
    "required": ("This field is required.", "هذا الحقل مطلوب."),
    "range": ("The value is out of range.", "القيمة خارج النطاق المسموح."),
    "missing": ("This field is required.", "هذا الحقل مطلوب."),
    "type": ("The value has the wrong type.", "نوع القيمة غير صحيح."),
    "control": (
        "Control characters (such as NUL) are not allowed.",
        "لا يُسمح بأحرف التحكم (مثل NUL).",
    ),
    "unknown": ("This field is not recognised.", "هذا الحقل غير معروف."),
    "too-short": ("Use at least 8 characters.", "استخدم ٨ أحرف على الأقل."),
    "too-long": ("Use at most 64 characters.", "استخدم ٦٤ حرفًا على الأكثر."),
    "common": (
        "This password is too common. Choose another.",
        "كلمة المرور هذه شائعة جدًا. اختر غيرها.",
    ),
    "contains-identity": (
        "The password must not contain your username or e-mail.",
        "يجب ألا تحتوي كلمة المرور على اسم المستخدم أو البريد الإلكتروني.",
    ),
    "repetitive": (
        "The password is too repetitive or sequential.",
        "كلمة المرور متكررة أو متسلسلة أكثر من اللازم.",
    ),
}
_FALLBACK = ("The value is not valid.", "القيمة غير صالحة.")


def field_error(field: str, code: str) -> FieldError:
    en, ar = FIELD_MESSAGES.get(code, _FALLBACK)
    return FieldError(field=field, code=code, message_en=en, message_ar=ar)


def to_error_reply(exc: Exception) -> ErrorReply | None:  # noqa: PLR0911 - one line per kind
    if isinstance(exc, NotAuthenticated):
        return ErrorReply.of(ErrorCode.UNAUTHORISED)
    if isinstance(exc, AuditUnavailable):
        return ErrorReply.of(ErrorCode.AUDIT_UNAVAILABLE)
    if isinstance(exc, RegistrationRejected):
        fields = tuple(field_error(p.field, p.code) for p in exc.problems)
        return ErrorReply.of(ErrorCode.VALIDATION_FAILED, fields=fields)
    if isinstance(exc, AccountExists | UniqueViolation):
        return ErrorReply.of(ErrorCode.CONFLICT)
    if isinstance(exc, SealingKeyRotated):
        return ErrorReply.of(ErrorCode.SEALING_KEY_ROTATED)
    if isinstance(exc, SealedInputRejected):
        return ErrorReply.of(ErrorCode.MALFORMED)
    if isinstance(exc, CryptoError | DatabaseUnavailable):
        return ErrorReply.of(ErrorCode.UNAVAILABLE)
    return None
