"""The user aggregate as identity keeps it: every personal field encrypted, secrets hashed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from moment_contracts.identity import Locale, RegistrationFields
from moment_identity.domain.errors import FieldProblem, RegistrationRejected
from moment_identity.domain.fields import age_problem, check_fields
from moment_identity.domain.passwords import check_password

Status = Literal["active", "pending-guardian-consent"]
ENCRYPTED_FIELDS = ("name", "age", "email", "username", "recovery_question")
ADULT_AGE = 18


def new_subject_id() -> str:
    """Pseudonymous: random, so it reveals nothing about the person it stands for."""
    return str(uuid.uuid4())


def check_registration(fields: RegistrationFields) -> list[FieldProblem]:
    """The shared field rules (domain/fields.py), the password policy, and the age's range."""
    problems = check_fields(
        {
            "username": fields.username,
            "email": fields.email,
            "name": fields.name,
            "recovery_question": fields.recovery_question,
            "recovery_answer": fields.recovery_answer,
        }
    )
    problems.extend(
        FieldProblem("password", code)
        for code in check_password(fields.password, username=fields.username, email=fields.email)
    )
    if code := age_problem(fields.age):
        problems.append(FieldProblem("age", code))
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
    return check_fields(values)
