"""Domain errors. They name fields, never values, so they are safe to log and to reply with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str


class IdentityError(Exception):
    """Base of the identity domain's errors."""


class RegistrationRejected(IdentityError):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("registration rejected: " + ", ".join(p.field for p in problems))
        self.problems = problems


class AccountExists(IdentityError):
    """The username or e-mail is taken. Which one is not said, to avoid helping enumeration."""

    def __init__(self) -> None:
        super().__init__("an account with this username or e-mail already exists")


class SealedInputRejected(IdentityError):
    """The sealed box did not open or its content does not match the contract."""
