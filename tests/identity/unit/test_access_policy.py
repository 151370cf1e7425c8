"""The role x purpose x field policy: every denial has a reason, and nothing unlisted is allowed."""

from __future__ import annotations

import pytest

from moment_identity.domain.access import POLICY, READABLE_FIELDS, AccessRequest, decide


def ask(kind: str, roles: tuple[str, ...], fields: set[str], purpose: str | None, **kw: object):
    request = AccessRequest(
        principal_id=kw.pop("principal_id", "actor-1"),  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        roles=roles,
        subject_id=kw.pop("subject_id", "subject-1"),  # type: ignore[arg-type]
        fields=frozenset(fields),
        purpose=purpose,
        **kw,  # type: ignore[arg-type]
    )
    return decide(request)


def test_a_customer_reads_all_their_own_fields_without_a_purpose() -> None:
    decision = ask("customer", (), set(READABLE_FIELDS), None, principal_id="subject-1")
    assert decision.allowed


def test_a_customer_never_reads_someone_else() -> None:
    decision = ask("customer", (), {"name"}, "user-dealings", principal_id="subject-2")
    assert not decision.allowed
    assert decision.reason == "not-own-data"


def test_staff_need_a_purpose() -> None:
    decision = ask("staff", ("support-operator",), {"email"}, None)
    assert (decision.allowed, decision.reason) == (False, "purpose-required")


def test_support_operators_see_contact_fields_for_user_dealings_only() -> None:
    assert ask("staff", ("support-operator",), {"name", "email"}, "user-dealings").allowed
    denied = ask("staff", ("support-operator",), {"email", "recovery_question"}, "user-dealings")
    assert not denied.allowed
    assert denied.denied_fields == {"recovery_question"}
    assert not ask("staff", ("support-operator",), {"email"}, "store-quality").allowed


def test_legal_disclosure_needs_an_approved_case() -> None:
    assert (
        ask("staff", ("legal-counsel",), {"name"}, "legal-disclosure").reason == "case-not-approved"
    )
    assert ask(
        "staff", ("legal-counsel",), {"name"}, "legal-disclosure", approved_case=True
    ).allowed


def test_security_analysts_read_no_personal_data() -> None:
    assert not ask("staff", ("security-analyst",), {"username"}, "user-dealings").allowed


def test_purposes_outside_the_policy_are_refused() -> None:
    assert not ask("staff", ("privacy-officer",), {"name"}, "marketing").allowed


def test_services_are_limited_to_their_own_needs() -> None:
    assert ask("service", ("storefront",), {"email", "name"}, "user-dealings").allowed
    assert not ask("service", ("storefront",), {"age"}, "user-dealings").allowed
    assert not ask("service", ("audit",), {"email"}, "user-dealings").allowed


@pytest.mark.parametrize("role", sorted(POLICY))
def test_no_role_reaches_beyond_the_readable_fields(role: str) -> None:
    for fields in POLICY[role].values():
        assert fields <= READABLE_FIELDS


def test_unknown_fields_are_refused() -> None:
    decision = ask("staff", ("privacy-officer",), {"password"}, "user-dealings")
    assert (decision.allowed, decision.reason) == (False, "unknown-field")
