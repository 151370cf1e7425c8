"""`forged-producer` alerts: one id per claimed source per window, whatever the flood; text safe
for a SIEM whatever the attacker wrote in `ce_source`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from moment_audit.domain.findings import forged_producer_alert

AT = datetime(2026, 12, 6, 10, 0, 10, tzinfo=UTC)


def test_one_id_per_source_per_window() -> None:
    first = forged_producer_alert("/attacker/a", ["bad-mac"], 3, AT, 300)
    later = forged_producer_alert(
        "/attacker/a", ["unknown-producer"], 9, AT + timedelta(seconds=1), 300
    )
    assert first.alert_id == later.alert_id
    next_window = forged_producer_alert(
        "/attacker/a", ["bad-mac"], 1, AT + timedelta(minutes=5), 300
    )
    other = forged_producer_alert("/attacker/b", ["bad-mac"], 1, AT, 300)
    assert len({first.alert_id, next_window.alert_id, other.alert_id}) == 3
    assert (first.rule, first.severity, first.count, first.window_s) == (
        "forged-producer",
        "high",
        3,
        300,
    )
    assert first.source_ref == "/attacker/a"
    assert first.detail.endswith(": bad-mac")


def test_a_source_that_is_not_uri_shaped_is_not_quoted() -> None:
    for source in ("Jane Doe <jane@example.test>", "/x" * 50, "\u200b/evil", ""):
        alert = forged_producer_alert(source, ["unknown-producer", "bad-mac"], 1, AT, 60)
        assert alert.source_ref == "?"
        assert source not in alert.detail or not source
        assert alert.detail.endswith("bad-mac,unknown-producer")
