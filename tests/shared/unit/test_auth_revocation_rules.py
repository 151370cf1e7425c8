"""Revocation rules as a service's database keeps them: never relaxed, whatever arrives."""

from __future__ import annotations

import itertools

import pytest

from moment_auth.claims import TokenClaims
from moment_auth.errors import TokenRevoked
from moment_auth.principals import Principal
from moment_auth.revocation import RevocationRule, check_revoked

NOW = 1_800_000_000


def claims(sv: int = 0, iat: int = NOW, sub: str = "subject-1") -> TokenClaims:
    return TokenClaims.for_principal(Principal.customer(sub, sv), issued_at=iat, ttl_s=900)


class DictStore:
    """A RevocationStore in a dict: only the rule logic is under test here."""

    def __init__(self) -> None:
        self.rules: dict[str, RevocationRule] = {}

    async def record(self, principal_id: str, rule: RevocationRule) -> None:
        old = self.rules.get(principal_id)
        self.rules[principal_id] = rule if old is None else old.merged(rule)

    async def rule(self, principal_id: str) -> RevocationRule | None:
        return self.rules.get(principal_id)


def test_a_version_rule_revokes_older_sessions_only() -> None:
    rule = RevocationRule(min_session_version=2)
    assert rule.revokes(claims(sv=1))
    assert not rule.revokes(claims(sv=2))
    assert not rule.revokes(claims(sv=3))


def test_an_issue_time_rule_counts_its_own_second_as_earlier() -> None:
    rule = RevocationRule(issued_before=NOW)
    assert rule.revokes(claims(iat=NOW - 1))
    assert not rule.revokes(claims(iat=NOW))


def test_a_permanent_rule_revokes_every_version_and_every_future_token() -> None:
    rule = RevocationRule(permanent=True)
    for sv in (0, 1, 2**31 - 1):
        assert rule.revokes(claims(sv=sv, iat=NOW + 10**6))


RULES = (
    RevocationRule(min_session_version=3),
    RevocationRule(min_session_version=1),
    RevocationRule(issued_before=NOW),
    RevocationRule(permanent=True),
    RevocationRule(),
)


@pytest.mark.parametrize("order", list(itertools.permutations(RULES)))
def test_merging_in_any_order_gives_the_strictest_rule(
    order: tuple[RevocationRule, ...],
) -> None:
    merged = RevocationRule()
    for rule in order:
        merged = merged.merged(rule)
    assert merged == RevocationRule(min_session_version=3, issued_before=NOW, permanent=True)


def test_a_replayed_older_event_does_not_relax_a_rule() -> None:
    strict = RevocationRule(min_session_version=5)
    assert strict.merged(RevocationRule(min_session_version=1)).revokes(claims(sv=4))
    gone = RevocationRule(permanent=True)
    assert gone.merged(RevocationRule(min_session_version=9)).revokes(claims(sv=10))


async def test_check_revoked_asks_the_store_for_the_token_s_own_principal() -> None:
    store = DictStore()
    await check_revoked(store, claims(sv=0))  # nothing recorded: accepted
    await store.record("someone-else", RevocationRule(permanent=True))
    await check_revoked(store, claims(sv=0))
    await store.record("subject-1", RevocationRule(min_session_version=1))
    with pytest.raises(TokenRevoked):
        await check_revoked(store, claims(sv=0))
    await check_revoked(store, claims(sv=1))
