"""One set of rules for the personal fields, the same at registration and at rectification.

A value is refused with a `FieldProblem` (the field's name and a code, never the value) when it:
holds a control character (NUL and the other C0/C1 controls, lone surrogates); is too long; shows
nothing once Unicode NFKC has been applied and format characters (zero-width spaces and joiners,
bidi marks, the BOM), invisible fillers and whitespace are set aside; or, for an e-mail address,
isn't one by RFC 5321/5322 as `email-validator` reads them (a label of at most 63 characters, a
domain of at most 253, an address of at most 254; no DNS is asked). Ages are whole numbers, given
as JSON integers at registration (the contract is strict: no "30", 30.0 or true) and as ASCII
digits in a rectification, whose values are all text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ValidationError

from moment_identity.domain.errors import FieldProblem, RegistrationRejected
from moment_identity.domain.normalise import recovery_answer_key, username_key

M = TypeVar("M", bound=BaseModel)

NAME_MAX = 512
QUESTION_MAX = 512
ANSWER_MAX = 512
USERNAME_MIN, USERNAME_MAX = 3, 64
EMAIL_MAX = 254
AGE_MIN, AGE_MAX = 1, 120
_AGE_TEXT = re.compile(r"[0-9]{1,3}")

# Letters and symbols that render as nothing: Hangul fillers (Lo) and the blank braille pattern
# (So). With the format characters (Cf) they make a name that looks empty.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_CONTROL = frozenset({"Cc", "Cs"})
_HIDDEN = frozenset({"Cf", "Zs", "Zl", "Zp", "Mn", "Me"})

# Where pydantic's error types land among ours (service/errors.py words each code).
_PYDANTIC_CODES = {
    "string_too_long": "length",
    "string_too_short": "length",
    "too_long": "length",
    "too_short": "length",
    "less_than_equal": "range",
    "greater_than_equal": "range",
    "less_than": "range",
    "greater_than": "range",
    "missing": "missing",
    "extra_forbidden": "unknown",
    "literal_error": "unknown",
}


def has_control(value: str) -> bool:
    return any(unicodedata.category(c) in _CONTROL for c in value)


def visible(value: str) -> str:
    """What a reader sees of `value`: NFKC, without format characters, fillers and spacing."""
    return "".join(
        c
        for c in unicodedata.normalize("NFKC", value)
        if c not in _INVISIBLE and unicodedata.category(c) not in _HIDDEN and not c.isspace()
    )


def text_problem(value: str, max_length: int, min_visible: int = 1) -> str | None:
    """The code of what is wrong with a text field, or None."""
    if has_control(value):
        return "control"
    if len(value) > max_length:
        return "length"
    shown = len(visible(value))
    if shown == 0:
        return "required"
    return "length" if shown < min_visible else None


def username_problem(value: str) -> str | None:
    if has_control(value):
        return "control"
    # Counted as people see it, and as it is looked up: zero-width characters, tatweel and
    # harakat neither make nor pad a username (a key of tatweels alone would be everyone's).
    shown = min(len(visible(value)), len(visible(username_key(value))))
    return None if USERNAME_MIN <= shown <= USERNAME_MAX else "length"


def answer_problem(value: str) -> str | None:
    """An answer is compared without punctuation or spaces: one of those alone would match any."""
    code = text_problem(value, ANSWER_MAX)
    return code or (None if visible(recovery_answer_key(value)) else "required")


def email_problem(value: str) -> str | None:
    if has_control(value):
        return "control"
    if len(value) > EMAIL_MAX:
        return "length"
    try:
        # `.test` (RFC 2606) is let through: no DNS is asked, so nothing is mailed there.
        validate_email(
            value.strip(), check_deliverability=False, test_environment=True, strict=True
        )
    except EmailNotValidError:
        return "format"
    return None


def age_problem(value: int) -> str | None:
    return None if AGE_MIN <= value <= AGE_MAX else "range"


def age_text_problem(value: str) -> str | None:
    """A rectified age: ASCII digits only (no "²", no "٣٠", no sign or spaces)."""
    if not _AGE_TEXT.fullmatch(value):
        return "format"
    return age_problem(int(value))


TEXT_RULES: dict[str, Callable[[str], str | None]] = {
    "name": lambda v: text_problem(v, NAME_MAX),
    "username": username_problem,
    "email": email_problem,
    "recovery_question": lambda v: text_problem(v, QUESTION_MAX),
    "recovery_answer": answer_problem,
    "age": age_text_problem,
}


def check_fields(values: Mapping[str, str]) -> list[FieldProblem]:
    """Each text value by its field's rule; a field without a rule is refused as unknown."""
    problems: list[FieldProblem] = []
    for name, value in values.items():
        rule = TEXT_RULES.get(name)
        code = "unknown" if rule is None else rule(value)
        if code is not None:
            problems.append(FieldProblem(name if rule else "fields", code))
    return problems


def contract_problems(
    errors: Iterable[Mapping[str, Any]], known: Iterable[str]
) -> list[FieldProblem]:
    """Pydantic's errors on a sealed plaintext model as field problems. A location that isn't a
    known field (a key the sender made up) is reported as "fields": names are repeated, values
    and made-up keys never."""
    names = frozenset(known)
    problems: dict[tuple[str, str], FieldProblem] = {}
    for error in errors:
        where = [str(part) for part in error.get("loc", ())]
        field = next((part for part in where if part in names), "fields")
        kind = str(error.get("type", ""))
        code = _PYDANTIC_CODES.get(kind, "type" if kind.endswith("_type") else "format")
        problems.setdefault((field, code), FieldProblem(field, code))
    return list(problems.values())


def parse_plaintext(model: type[M], plaintext: bytes | str, known: Iterable[str]) -> M:
    """An opened sealed box as its contract, or RegistrationRejected naming the fields at fault."""
    try:
        return model.model_validate_json(plaintext)
    except ValidationError as exc:
        raise RegistrationRejected(contract_problems(exc.errors(), known)) from None
