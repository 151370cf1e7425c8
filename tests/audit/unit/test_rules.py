"""Detection rules: each fires exactly at its threshold, once per window, again after it, with
bounded memory and no personal values in what it raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from moment_audit.domain.rules import DetectionEngine, Rule, RulesConfig, alert_id
from moment_contracts.alerts import AlertRaised
from moment_contracts.audit import Outcome, PersonalDataAccessed

Action = Literal["read", "write", "create", "export", "erase", "login", "recovery"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ev(
    action: str = "read",
    *,
    at: float = 0.0,
    actor: str = "staff-1",
    subject: str = "subj-1",
    outcome: str = "success",
    source: str | None = None,
    request: str | None = None,
    role: str = "support",
    purpose: str | None = "user-dealings",
    fields: tuple[str, ...] = ("email",),
) -> PersonalDataAccessed:
    return PersonalDataAccessed.model_validate(
        {
            "action": action,
            "actor_id": actor,
            "actor_role": role,
            "subject_id": subject,
            "fields": fields,
            "purpose": purpose,
            "outcome": outcome,
            "occurred_at": T0 + timedelta(seconds=at),
            "request_id": request,
            "source_ref": source,
        }
    )


def feed(engine: DetectionEngine, events: list[PersonalDataAccessed]) -> list[AlertRaised]:
    return [alert for event in events for alert in engine.observe(event)]


def rules(alerts: list[AlertRaised]) -> list[tuple[str, str]]:
    return [(a.rule, a.severity) for a in alerts]


PAD = PersonalDataAccessed


def reads(n: int, *, start: float = 0.0, actor: str = "staff-1", base: int = 0) -> list[PAD]:
    return [ev(at=start + i, actor=actor, subject=f"subj-{base + i}") for i in range(n)]


def test_mass_read_fires_exactly_at_the_threshold() -> None:
    engine = DetectionEngine()
    assert feed(engine, reads(49)) == []
    # Re-reading a subject already counted adds nothing.
    assert engine.observe(ev(at=49, subject="subj-0")) == []
    [alert] = engine.observe(ev(at=50, subject="subj-49"))
    assert (alert.rule, alert.severity, alert.actor_id) == ("mass-read", "high", "staff-1")
    assert (alert.count, alert.window_s, alert.subject_id) == (50, 300, None)
    assert alert.first_seen == T0 + timedelta(seconds=1)  # subj-0 was re-read at 49
    assert alert.last_seen == T0 + timedelta(seconds=50)


def test_mass_read_once_per_window_then_again_after_it() -> None:
    engine = DetectionEngine()
    assert len(feed(engine, reads(50))) == 1
    assert feed(engine, reads(100, start=60, base=50)) == []
    # Past the suppression and with the first burst out of the window: a fresh 50 fires again.
    later = feed(engine, reads(50, start=500, base=1000))
    assert len(later) == 1
    assert later[0].last_seen == T0 + timedelta(seconds=549)


def test_mass_read_counts_within_the_window_only_and_per_actor() -> None:
    engine = DetectionEngine()
    # 49 early reads fall out of the window before the next 49 arrive.
    assert feed(engine, reads(49)) == []
    assert feed(engine, reads(49, start=400, base=100)) == []
    assert feed(engine, reads(49, start=400, actor="staff-2", base=100)) == []
    assert engine.observe(ev(at=460, subject="subj-x", outcome="denied", action="write")) != []
    assert [a.rule for a in engine.observe(ev(at=461, subject="subj-y"))] == ["mass-read"]


def test_failed_reads_and_exports_count_as_expected() -> None:
    config = RulesConfig(mass_read_subjects=3)
    engine = DetectionEngine(config)
    assert engine.observe(ev(at=0, subject="a", outcome="failure")) == []
    assert engine.observe(ev(at=1, subject="b", action="export")) == []
    assert engine.observe(ev(at=2, subject="c")) == []
    assert rules(engine.observe(ev(at=3, subject="d", action="export"))) == [("mass-read", "high")]


def test_denied_data_action_raises_medium_once_per_actor_window() -> None:
    engine = DetectionEngine()
    [alert] = engine.observe(ev("export", outcome="denied", purpose="marketing", source="src-1"))
    assert (alert.rule, alert.severity) == ("policy-violation", "medium")
    assert (alert.actor_id, alert.subject_id, alert.source_ref) == ("staff-1", "subj-1", "src-1")
    assert alert.detail == "export denied: role support, purpose marketing, fields email"
    assert engine.observe(ev("read", at=10, outcome="denied")) == []
    assert engine.observe(ev("read", at=10, outcome="denied", actor="staff-2")) != []
    assert rules(engine.observe(ev("read", at=301, outcome="denied"))) == [
        ("policy-violation", "medium")
    ]


@pytest.mark.parametrize(
    ("action", "outcome"),
    [("read", "success"), ("read", "failure"), ("login", "denied"), ("recovery", "denied")],
)
def test_no_policy_alert_for_success_failure_or_auth(action: str, outcome: str) -> None:
    alerts = DetectionEngine().observe(ev(action, outcome=outcome))
    assert Rule.POLICY_VIOLATION not in {a.rule for a in alerts}


def test_repeated_denials_raise_high_at_the_fifth() -> None:
    engine = DetectionEngine()
    assert rules(engine.observe(ev(at=0, outcome="denied"))) == [("policy-violation", "medium")]
    assert feed(engine, [ev(at=i, outcome="denied") for i in range(1, 4)]) == []
    [alert] = engine.observe(ev(at=4, outcome="denied"))
    assert (alert.severity, alert.count) == ("high", 5)
    assert (alert.actor_id, alert.subject_id) == ("staff-1", None)
    assert feed(engine, [ev(at=5 + i, outcome="denied") for i in range(20)]) == []
    again = feed(engine, [ev(at=400 + i, outcome="denied") for i in range(5)])
    assert rules(again) == [("policy-violation", "medium"), ("policy-violation", "high")]


def test_denials_spread_beyond_the_window_do_not_burst() -> None:
    engine = DetectionEngine()
    alerts = feed(engine, [ev(at=i * 80, outcome="denied") for i in range(10)])
    assert {a.severity for a in alerts} == {"medium"}


def test_access_after_an_erase_record_raises_high() -> None:
    engine = DetectionEngine()
    assert engine.observe(ev("read", at=0, subject="gone")) == []
    assert engine.observe(ev("erase", at=1, subject="gone", actor="gone")) == []
    [alert] = engine.observe(ev("read", at=2, subject="gone", outcome="failure", actor="staff-9"))
    assert (alert.rule, alert.severity) == ("erased-subject-access", "high")
    assert (alert.subject_id, alert.actor_id, alert.count) == ("gone", "staff-9", 1)
    assert alert.detail.startswith("read failure after erasure")


def test_erasure_seeded_from_identity_and_alerts_once_per_window() -> None:
    engine = DetectionEngine()
    engine.note_erased("gone", T0)
    assert engine.observe(ev("read", at=-5, subject="gone")) == []  # before the erasure
    assert len(engine.observe(ev("write", at=5, subject="gone", outcome="denied"))) == 2
    assert engine.observe(ev("read", at=100, subject="gone", actor="staff-2")) == []
    assert engine.observe(ev("erase", at=150, subject="gone")) == []  # a repeated erase is benign
    assert rules(engine.observe(ev("read", at=305, subject="gone", actor="staff-2"))) == [
        ("erased-subject-access", "high")
    ]


def test_denied_erase_or_unresolved_subject_marks_nothing() -> None:
    engine = DetectionEngine()
    engine.observe(ev("erase", at=0, subject="kept", outcome="denied"))
    engine.note_erased("unknown", T0)
    assert engine.observe(ev("read", at=1, subject="kept")) == []
    assert engine.observe(ev("login", at=1, subject="unknown", outcome="failure")) == []


def login_failures(
    n: int, *, source: str | None = "src-1", start: float = 0, base: int = 0
) -> list[PAD]:
    return [
        ev("login", at=start + i, subject=f"acct-{base + i}", outcome="failure", source=source)
        for i in range(n)
    ]


def test_stuffing_from_one_source_fires_at_ten_accounts() -> None:
    engine = DetectionEngine()
    assert feed(engine, login_failures(9)) == []
    # The same account again, or another source, does not bring this source to ten.
    again = ev("login", at=9, subject="acct-0", outcome="failure", source="src-1")
    assert engine.observe(again) == []
    assert feed(engine, login_failures(1, source="src-2", base=50)) == []
    [alert] = feed(engine, login_failures(1, start=10, base=9))
    assert (alert.rule, alert.severity) == ("credential-stuffing", "high")
    assert (alert.source_ref, alert.count) == ("src-1", 10)
    assert (alert.actor_id, alert.subject_id) == (None, None)
    assert feed(engine, login_failures(30, start=11, base=100)) == []
    assert len(feed(engine, login_failures(10, start=400, base=200))) == 1


def test_unknown_accounts_count_per_attempt() -> None:
    engine = DetectionEngine()
    attempts = [
        ev(
            "login",
            at=i,
            subject="unknown",
            actor="anonymous",
            outcome="failure",
            source="s",
            request=f"req-{i}",
        )
        for i in range(10)
    ]
    assert rules(feed(engine, attempts)) == [("credential-stuffing", "high")]


def test_denied_logins_count_and_successes_do_not() -> None:
    engine = DetectionEngine(RulesConfig(stuffing_source_accounts=2))
    assert engine.observe(ev("login", subject="a", source="s")) == []
    assert engine.observe(ev("login", subject="b", outcome="denied", source="s")) == []
    assert engine.observe(ev("login", subject="c", outcome="failure", source="s")) != []


def test_global_stuffing_needs_both_failures_and_accounts() -> None:
    engine = DetectionEngine()
    # 60 failures on only 19 accounts (and no source to group by): not stuffing.
    few = [ev("login", at=i, subject=f"acct-{i % 19}", outcome="failure") for i in range(60)]
    assert feed(engine, few) == []
    engine = DetectionEngine()
    assert feed(engine, login_failures(49, source=None)) == []
    [alert] = feed(engine, login_failures(1, source=None, start=49, base=49))
    assert (alert.rule, alert.count) == ("credential-stuffing", 50)
    assert (alert.source_ref, alert.window_s) == (None, 300)
    assert alert.detail == "50 login failures across at least 20 accounts"
    assert feed(engine, login_failures(100, source=None, start=50, base=50)) == []


def recovery_failures(n: int, *, subject: str, source: str, step: float = 60) -> list[PAD]:
    return [
        ev(
            "recovery",
            at=i * step,
            subject=subject,
            actor=subject,
            outcome="failure",
            source=f"{source}-{i}" if source == "many" else source,
        )
        for i in range(n)
    ]


def test_recovery_abuse_on_one_account_fires_at_five() -> None:
    engine = DetectionEngine()
    assert feed(engine, recovery_failures(4, subject="acct-1", source="many")) == []
    [alert] = engine.observe(ev("recovery", at=600, subject="acct-1", outcome="denied"))
    assert (alert.rule, alert.subject_id) == ("recovery-abuse", "acct-1")
    assert (alert.count, alert.window_s) == (5, 3600)


def test_recovery_abuse_window_is_an_hour() -> None:
    engine = DetectionEngine()
    assert feed(engine, recovery_failures(10, subject="acct-1", source="many", step=1000)) == []


def test_recovery_abuse_from_one_source_fires_at_ten() -> None:
    engine = DetectionEngine()
    attempts = recovery_failures(10, subject="unknown", source="src-1")
    alerts = feed(engine, attempts)
    assert [(a.rule, a.source_ref, a.count) for a in alerts] == [("recovery-abuse", "src-1", 10)]
    assert alerts[0].last_seen == attempts[-1].occurred_at


def mixed_stream(n: int) -> list[PAD]:
    """Every record a new actor, subject and source, so nothing repeats but memory could grow."""
    kinds: list[tuple[Action, Outcome]] = [
        ("read", "success"),
        ("read", "denied"),
        ("login", "failure"),
        ("recovery", "failure"),
    ]
    return [
        PAD.model_construct(
            action=kinds[i % 4][0],
            actor_id=f"a{i}",
            actor_role="support",
            subject_id=f"s{i}",
            fields=(),
            purpose=None,
            outcome=kinds[i % 4][1],
            request_id=f"r{i}",
            occurred_at=T0 + timedelta(seconds=i / 4),
            source_ref=f"src{i}",
            trace_id=None,
        )
        for i in range(n)
    ]


def test_memory_stays_bounded_over_100k_events() -> None:
    engine = DetectionEngine()
    sizes = []
    for i, event in enumerate(mixed_stream(100_000)):
        engine.observe(event)
        if i % 20_000 == 19_999:
            sizes.append(engine.state_size())
    # 4 records a second: an hour's window holds at most ~14,400 records per tracker, and the
    # size plateaus instead of growing with the stream.
    assert max(sizes) <= 40_000
    assert sizes[-1] <= sizes[2] * 1.05


def test_key_count_is_capped_even_without_time_passing() -> None:
    engine = DetectionEngine(RulesConfig(max_keys=100, max_erased_subjects=10))
    for i in range(5_000):
        engine.observe(ev(actor=f"a{i}", subject=f"s{i}"))
        engine.note_erased(f"e{i}", T0)
    assert engine.state_size() <= 100 + 10


def test_alerts_carry_ids_and_field_names_only() -> None:
    canary = "alice.canary@example.com"
    engine = DetectionEngine(RulesConfig(mass_read_subjects=2))
    events = [
        ev("read", at=0, subject="s1", fields=("email", canary), purpose="Alice Canary"),
        ev("read", at=1, subject="s2", outcome="denied", role="x y@z", fields=(canary,)),
        ev("erase", at=2, subject="s1"),
        ev("read", at=3, subject="s1", fields=(canary,), purpose="Alice Canary"),
        ev("read", at=4, subject="s3", fields=("email", canary)),
    ]
    alerts = feed(engine, events)
    assert {a.rule for a in alerts} >= {"policy-violation", "erased-subject-access", "mass-read"}
    for alert in alerts:
        text = alert.model_dump_json()
        assert "canary" not in text.lower()
        assert "example.com" not in text


def test_alert_ids_are_deterministic_across_replays() -> None:
    events = [*reads(50), *[ev(at=60 + i, outcome="denied") for i in range(5)]]
    first, second = feed(DetectionEngine(), events), feed(DetectionEngine(), events)
    assert first == second
    assert len({a.alert_id for a in first}) == len(first) == 3
    mass = first[0]
    assert mass.alert_id == alert_id("mass-read", "actor:staff-1", mass.first_seen)


def test_naive_times_are_read_as_utc() -> None:
    engine = DetectionEngine()
    engine.note_erased("gone", datetime(2026, 3, 1, 12, 0))  # noqa: DTZ001
    assert engine.observe(ev(at=1, subject="gone")) != []


def test_alert_contract_round_trips() -> None:
    [alert] = DetectionEngine().observe(ev(at=1, outcome="denied"))
    assert AlertRaised.ce_type == "moment.audit.alert-raised.v1"
    assert AlertRaised.model_validate_json(alert.model_dump_json()) == alert
