"""The user aggregate as identity keeps it: every personal field encrypted, secrets hashed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from moment_contracts.identity import Locale, RegistrationFields
from moment_identity.domain.errors import FieldProblem, RegistrationRejected
from moment_identity.domain.normalise import nfkc
from moment_identity.domain.passwords import check_password

Status = Literal["active", "pending-guardian-consent"]
ENCRYPTED_FIELDS = ("name", "age", "email", "username", "recovery_question")
ADULT_AGE = 18
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")


def new_subject_id() -> str:
    """Pseudonymous: random, so it reveals nothing about the person it stands for."""
    return str(uuid.uuid4())


def check_registration(fields: RegistrationFields) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if not 3 <= len(nfkc(fields.username).strip()) <= 64:
        problems.append(FieldProblem("username", "length"))
    if not _EMAIL.fullmatch(nfkc(fields.email).strip()):
        problems.append(FieldProblem("email", "format"))
    problems.extend(
        FieldProblem("password", code)
        for code in check_password(fields.password, username=fields.username, email=fields.email)
    )
    if not nfkc(fields.name).strip():
        problems.append(FieldProblem("name", "required"))
    if not 1 <= fields.age <= 120:
        problems.append(FieldProblem("age", "range"))
    if not nfkc(fields.recovery_question).strip():
        problems.append(FieldProblem("recovery_question", "required"))
    if not nfkc(fields.recovery_answer).strip():
        problems.append(FieldProblem("recovery_answer", "required"))
    return problems


def validate_registration(fields: RegistrationFields) -> Status:
    if problems := check_registration(fields):
        raise RegistrationRejected(problems)
    # Saudi PDPL: a minor lacks full legal capacity; a guardian must consent first.
    return "active" if fields.age >= ADULT_AGE else "pending-guardian-consent"


@dataclass
class User:
    subject_id: str
    status: Status
    locale: Locale
    key_version: int
    username_index: str
    email_index: str
    encrypted: dict[str, bytes]
    password_hash: str
    recovery_answer_hash: str
    created_at: datetime
    events: list[object] = field(default_factory=list)


def check_changes(values: dict[str, str]) -> list[FieldProblem]:
    """Rectified values follow the same rules as at registration."""
    problems: list[FieldProblem] = []
    checks: dict[str, Callable[[str], bool]] = {
        "username": lambda v: 3 <= len(nfkc(v).strip()) <= 64,
        "email": lambda v: bool(_EMAIL.fullmatch(nfkc(v).strip())),
        "name": lambda v: bool(nfkc(v).strip()),
        "recovery_question": lambda v: bool(nfkc(v).strip()),
        "age": lambda v: v.strip().isdigit() and 1 <= int(v) <= 120,
    }
    codes = {"username": "length", "email": "format", "age": "range"}
    for name, value in values.items():
        if not checks[name](value):
            problems.append(FieldProblem(name, codes.get(name, "required")))
    return problems
