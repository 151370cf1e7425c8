"""Who a token speaks for: customers, staff members with roles, and service accounts.

Principal ids are pseudonymous (a customer's subject id, a staff id, a service name), so they
may appear in tokens, logs and audit records without revealing anyone's personal data.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator


class PrincipalKind(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SERVICE = "service"


class Role(StrEnum):
    """Staff roles; customers and service accounts carry none."""

    SUPPORT_OPERATOR = "support-operator"
    PRIVACY_OFFICER = "privacy-officer"
    LEGAL_COUNSEL = "legal-counsel"
    SECURITY_ANALYST = "security-analyst"
    ADMIN = "admin"


class ServiceAccount(StrEnum):
    """The only ids a service principal may have."""

    STOREFRONT = "storefront"
    IDENTITY = "identity"
    CONSENT = "consent"
    AUDIT = "audit"


# Letters, digits and a few separators: wide enough for UUIDs and service names, narrow enough
# that an id can never smuggle markup or line breaks into logs.
PrincipalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class Principal(BaseModel):
    """An authenticated party. `session_version` rises when identity revokes its tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PrincipalId
    kind: PrincipalKind
    roles: tuple[Role, ...] = ()
    session_version: StrictInt = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _roles_fit_kind(self) -> Self:
        if self.roles and self.kind is not PrincipalKind.STAFF:
            raise ValueError("only staff principals carry roles")
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("a role is listed twice")
        if self.kind is PrincipalKind.SERVICE and self.id not in set(ServiceAccount):
            raise ValueError("a service principal must be one of the known service accounts")
        return self

    @classmethod
    def customer(cls, subject_id: str, session_version: int = 0) -> Self:
        return cls(id=subject_id, kind=PrincipalKind.CUSTOMER, session_version=session_version)

    @classmethod
    def staff(cls, staff_id: str, roles: Iterable[Role], session_version: int = 0) -> Self:
        return cls(
            id=staff_id,
            kind=PrincipalKind.STAFF,
            roles=tuple(roles),
            session_version=session_version,
        )

    @classmethod
    def service(cls, account: ServiceAccount, session_version: int = 0) -> Self:
        return cls(id=account.value, kind=PrincipalKind.SERVICE, session_version=session_version)

    def has_role(self, role: Role) -> bool:
        return role in self.roles
