"""Principal validation and the RevocationList's rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from moment_auth import (
    Principal,
    PrincipalKind,
    RevocationList,
    Role,
    ServiceAccount,
    TokenClaims,
    TokenRevoked,
)

SUBJECT = "0b7c6f3e-2a6e-4f1b-9a57-0d7f3c2b9e11"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def claims(sv: int = 0, iat: int = 1_800_000_000) -> TokenClaims:
    return TokenClaims.for_principal(
        Principal.customer(SUBJECT, session_version=sv), issued_at=iat, ttl_s=900
    )


def test_constructors() -> None:
    staff = Principal.staff("staff-7", [Role.ADMIN, Role.SECURITY_ANALYST], session_version=4)
    assert staff.kind is PrincipalKind.STAFF
    assert staff.has_role(Role.ADMIN)
    assert not staff.has_role(Role.LEGAL_COUNSEL)
    assert Principal.service(ServiceAccount.AUDIT).id == "audit"
    assert Principal.customer(SUBJECT).roles == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"id": SUBJECT, "kind": "customer", "roles": ("admin",)},
        {"id": "billing", "kind": "service"},
        {"id": "identity", "kind": "service", "roles": ("admin",)},
        {"id": "staff-1", "kind": "staff", "roles": ("admin", "admin")},
        {"id": "staff-1", "kind": "staff", "roles": ("root",)},
        {"id": "a b", "kind": "customer"},
        {"id": "", "kind": "customer"},
        {"id": "x" * 200, "kind": "customer"},
        {"id": SUBJECT, "kind": "robot"},
        {"id": SUBJECT, "kind": "customer", "session_version": -1},
        {"id": SUBJECT, "kind": "customer", "session_version": "1"},
    ],
)
def test_invalid_principals(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Principal.model_validate(fields)


def test_principal_is_frozen() -> None:
    principal = Principal.customer(SUBJECT)
    with pytest.raises(ValidationError):
        principal.session_version = 3  # type: ignore[misc]


def test_session_version_rule() -> None:
    revocations = RevocationList()
    revocations.record(SUBJECT, min_session_version=3)
    assert revocations.is_revoked(claims(sv=2))
    assert not revocations.is_revoked(claims(sv=3))
    with pytest.raises(TokenRevoked):
        revocations.check(claims(sv=0))
    revocations.check(claims(sv=4))


def test_rules_only_tighten() -> None:
    revocations = RevocationList()
    revocations.record(SUBJECT, min_session_version=5, issued_before=2_000)
    revocations.record(SUBJECT, min_session_version=2, issued_before=1_000)  # replayed, older
    assert revocations.is_revoked(claims(sv=4, iat=1_000_000_000_000))
    assert revocations.is_revoked(claims(sv=9, iat=1_500))


def test_issued_before_rule() -> None:
    revocations = RevocationList()
    revocations.record(SUBJECT, issued_before=1_800_000_000.5)
    # Same second as the revocation: counted as earlier, because iat has no fraction.
    assert revocations.is_revoked(claims(iat=1_800_000_000))
    assert not revocations.is_revoked(claims(iat=1_800_000_001))


def test_other_principals_unaffected() -> None:
    revocations = RevocationList()
    revocations.record("staff-1", min_session_version=9)
    assert not revocations.is_revoked(claims())


def test_record_needs_a_rule() -> None:
    with pytest.raises(ValueError, match="needs"):
        RevocationList().record(SUBJECT)


def test_prune() -> None:
    clock = FakeClock()
    revocations = RevocationList(clock=clock)
    revocations.record("old", min_session_version=1)
    clock.now += 600
    revocations.record(SUBJECT, min_session_version=1)
    clock.now += 400
    assert revocations.prune(max_age_s=930) == 1
    assert len(revocations) == 1
    assert revocations.is_revoked(claims(sv=0))
