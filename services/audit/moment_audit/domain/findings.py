"""Alerts about the store itself (a gap, a repeat, a failed verification), rather than about the
people a record concerns. Pure: no I/O.

Their ids carry no time: the same finding, found again by a later sweep, after a restart or by
another instance, has the same id, so it is published once (the watch skips ids already in its
outbox) and consumers that de-duplicate by id see it once whatever happens.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from moment_audit.domain.rules import ALERT_NAMESPACE, Rule
from moment_contracts.alerts import AlertRaised, Severity


def finding_id(rule: str, key: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{rule}|finding|{key}"))


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def finding_alert(
    rule: Rule,
    severity: Severity,
    key: str,
    detail: str,
    *,
    count: int,
    first_seen: datetime,
    last_seen: datetime,
) -> AlertRaised:
    return AlertRaised(
        rule=rule.value,
        severity=severity,
        window_s=0,
        count=count,
        first_seen=_utc(first_seen),
        last_seen=_utc(last_seen),
        detail=detail[:200],
        alert_id=finding_id(rule.value, key),
    )


def verification_alert(key: str, line: str, at: datetime) -> AlertRaised:
    """One finding of `verify`: `key` tells it apart from every other finding, and `line` is
    verify's own wording of it (a partition, numbers and a code)."""
    return finding_alert(
        Rule.VERIFICATION_FAILED,
        "high",
        key,
        f"audit verification failed: {line}",
        count=1,
        first_seen=at,
        last_seen=at,
    )
