"""Alerts about the store itself (a gap, a repeat, a failed verification), rather than about the
people a record concerns. Pure: no I/O.

Their ids carry no time: the same finding, found again by a later sweep, after a restart or by
another instance, has the same id, so it is published once (the watch skips ids already in its
outbox) and consumers that de-duplicate by id see it once whatever happens.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from moment_audit.domain.rules import ALERT_NAMESPACE, Rule, alert_id
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


# What a source may look like to be quoted in an alert (a URI-ish code); anything else is "?".
_SOURCE = re.compile(r"[A-Za-z0-9/._:~-]{1,80}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def forged_producer_alert(
    source: str, codes: Iterable[str], count: int, at: datetime, window_s: int
) -> AlertRaised:
    """Records on audit.events that did not prove a known producer wrote them. One id per source
    (as written, hashed) per fixed window, so a flood raises one alert, not one per record."""
    at = _utc(at)
    window = timedelta(seconds=window_s)
    start = _EPOCH + (at - _EPOCH) // window * window
    key = hashlib.sha256(source.encode(errors="replace")).hexdigest()
    return AlertRaised(
        rule=Rule.FORGED_PRODUCER.value,
        severity="high",
        source_ref=source if _SOURCE.fullmatch(source) else "?",
        window_s=window_s,
        count=count,
        first_seen=at,
        last_seen=at,
        detail=f"audit events refused, producer not proven: {','.join(sorted(set(codes)))}"[:200],
        alert_id=alert_id(Rule.FORGED_PRODUCER.value, key, start),
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


def unauthenticated_record_alert(
    partition: int, seq: int, reason: str, at: datetime
) -> AlertRaised:
    """A record the service did not store (no valid record MAC, or off the chain) found before a
    checkpoint would have covered it: nothing at or beyond it is signed. One id per record."""
    return finding_alert(
        Rule.UNAUTHENTICATED_RECORD,
        "high",
        f"{partition}:{seq}",
        f"checkpoint refused: partition {partition} seq {seq}: {reason}",
        count=1,
        first_seen=at,
        last_seen=at,
    )
