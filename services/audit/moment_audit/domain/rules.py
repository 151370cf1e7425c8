"""Detection rules over the audit stream (issue 4, capability 7): pure, in memory, no I/O.

Time is each record's own `occurred_at`, never the wall clock, so tests are deterministic and a
replay raises the same alerts with the same ids. Memory is bounded: every tracker forgets entries
older than its window, keeps at most `max_keys` keys (least recently active go first) and at most
its threshold of entries per key, since older entries cannot change a decision once a key has that
many. Windows slide with the newest time seen; a record arriving very late (after its key was
forgotten) counts only towards what is still remembered.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import count
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from moment_contracts.alerts import AlertRaised, Severity
from moment_contracts.audit import PersonalDataAccessed


class Rule(StrEnum):
    MASS_READ = "mass-read"
    POLICY_VIOLATION = "policy-violation"
    ERASED_SUBJECT_ACCESS = "erased-subject-access"
    CREDENTIAL_STUFFING = "credential-stuffing"
    RECOVERY_ABUSE = "recovery-abuse"
    GAP = "gap"
    VERIFICATION_FAILED = "verification-failed"
    FORGED_PRODUCER = "forged-producer"
    # The checkpointer found fewer checkpoints than it had signed: it stops signing there.
    CHECKPOINT_ROLLBACK = "checkpoint-rollback"
    UNAUTHENTICATED_RECORD = "unauthenticated-record"


class RulesConfig(BaseModel):
    """Thresholds (records or distinct ids) and windows (seconds) of every rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mass_read_subjects: int = Field(default=50, ge=1)
    mass_read_window_s: int = Field(default=300, ge=1)
    denial_burst: int = Field(default=5, ge=1)
    denial_window_s: int = Field(default=300, ge=1)
    erased_window_s: int = Field(default=300, ge=1, description="one alert per subject per window")
    stuffing_source_accounts: int = Field(default=10, ge=1)
    stuffing_global_failures: int = Field(default=50, ge=1)
    stuffing_global_accounts: int = Field(default=20, ge=1)
    stuffing_window_s: int = Field(default=300, ge=1)
    recovery_subject_failures: int = Field(default=5, ge=1)
    recovery_source_failures: int = Field(default=10, ge=1)
    recovery_window_s: int = Field(default=3600, ge=1)
    gap_grace_s: float = Field(default=60, ge=0, description="how long a missing seq may be late")
    max_keys: int = Field(default=10_000, ge=1, description="keys per tracker")
    max_erased_subjects: int = Field(default=1_000_000, ge=1)


# What identity records when an attempt names no known account: not an id of anyone.
_UNRESOLVED = frozenset({"unknown", "anonymous"})
_DATA_ACTIONS = frozenset({"read", "write", "export", "erase"})
_FAILED = frozenset({"failure", "denied"})
# Alert text carries codes and field names only; anything else shaped like free text is masked.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
ALERT_NAMESPACE = uuid.UUID("5d0c7a52-3f55-4f0e-9a4b-6a1d2f0c9e11")
_GLOBAL = "global"


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _names(values: Iterable[str | None]) -> str:
    return ",".join(v if v and _NAME.fullmatch(v) else "?" for v in values) or "-"


def masked(value: str) -> str:
    """`value` if it is shaped like a name or code, else "?": what alert text may carry."""
    return _names([value])


def alert_id(rule: str, key: str, window_start: datetime) -> str:
    """Deterministic, so a replay raises the same ids and consumers can de-duplicate."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{rule}|{key}|{_utc(window_start).isoformat()}"))


@dataclass(frozen=True)
class _Hit:
    count: int
    first_seen: datetime
    last_seen: datetime


class _Windows:
    """Per key, the distinct items seen within a sliding window, oldest first."""

    def __init__(self, window_s: int, cap: int, max_keys: int) -> None:
        self.window = timedelta(seconds=window_s)
        self._cap = cap
        self._max_keys = max_keys
        self._keys: OrderedDict[str, OrderedDict[Hashable, datetime]] = OrderedDict()

    def add(self, key: str, item: Hashable, at: datetime) -> tuple[int, datetime]:
        """Record `item` under `key`; return its distinct items in window and the oldest's time."""
        items = self._keys.get(key)
        if items is None:
            items = self._keys[key] = OrderedDict()
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        items[item] = max(items.pop(item, at), at)
        cutoff = at - self.window
        while len(items) > self._cap or next(iter(items.values())) < cutoff:
            items.popitem(last=False)
        return len(items), next(iter(items.values()))

    def prune(self, now: datetime) -> None:
        cutoff = now - self.window
        while self._keys and next(reversed(next(iter(self._keys.values())).values())) < cutoff:
            self._keys.popitem(last=False)

    def size(self) -> int:
        return sum(len(items) for items in self._keys.values())


class _Once:
    """Which keys alerted within the last window, so that one burst raises one alert."""

    def __init__(self, window_s: int, max_keys: int) -> None:
        self.window = timedelta(seconds=window_s)
        self._max_keys = max_keys
        self._until: OrderedDict[str, datetime] = OrderedDict()

    def first(self, key: str, at: datetime) -> bool:
        until = self._until.get(key)
        if until is not None and at < until:
            return False
        self._until.pop(key, None)
        self._until[key] = at + self.window
        if len(self._until) > self._max_keys:
            self._until.popitem(last=False)
        return True

    def prune(self, now: datetime) -> None:
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)

    def size(self) -> int:
        return len(self._until)


class _Threshold:
    """`threshold` distinct items under one key within the window: one hit per window."""

    def __init__(self, threshold: int, window_s: int, max_keys: int) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self._windows = _Windows(window_s, threshold, max_keys)
        self._once = _Once(window_s, max_keys)

    def hit(self, key: str, item: Hashable, at: datetime) -> _Hit | None:
        seen, first = self._windows.add(key, item, at)
        if seen < self.threshold or not self._once.first(key, at):
            return None
        return _Hit(seen, first, at)

    def prune(self, now: datetime) -> None:
        self._windows.prune(now)
        self._once.prune(now)

    def size(self) -> int:
        return self._windows.size() + self._once.size()


class _Ids(NamedTuple):
    """Whom an alert concerns: pseudonymous ids and a hashed source, never a value."""

    subject_id: str | None = None
    actor_id: str | None = None
    source_ref: str | None = None

    @classmethod
    def of(cls, event: PersonalDataAccessed) -> _Ids:
        return cls(event.subject_id, event.actor_id, event.source_ref)


def _alert(
    rule: Rule, severity: Severity, key: str, hit: _Hit, window_s: int, detail: str, ids: _Ids
) -> AlertRaised:
    return AlertRaised(
        rule=rule.value,
        severity=severity,
        window_s=window_s,
        count=hit.count,
        first_seen=hit.first_seen,
        last_seen=hit.last_seen,
        detail=detail[:200],
        alert_id=alert_id(rule.value, key, hit.first_seen),
        **ids._asdict(),
    )


class DetectionEngine:
    """Feed it audit records in (roughly) time order; it returns the alerts they raise."""

    def __init__(self, config: RulesConfig | None = None) -> None:
        c = self.config = config or RulesConfig()
        keys = c.max_keys
        self._mass_read = _Threshold(c.mass_read_subjects, c.mass_read_window_s, keys)
        self._denied = _Once(c.denial_window_s, keys)
        self._denials = _Threshold(c.denial_burst, c.denial_window_s, keys)
        self._erased_once = _Once(c.erased_window_s, keys)
        self._erased: OrderedDict[str, datetime] = OrderedDict()
        self._stuffing = _Threshold(c.stuffing_source_accounts, c.stuffing_window_s, keys)
        self._global_fails = _Windows(c.stuffing_window_s, c.stuffing_global_failures, 1)
        self._global_accounts = _Windows(c.stuffing_window_s, c.stuffing_global_accounts, 1)
        self._global_once = _Once(c.stuffing_window_s, 1)
        self._recovery_subject = _Threshold(c.recovery_subject_failures, c.recovery_window_s, keys)
        self._recovery_source = _Threshold(c.recovery_source_failures, c.recovery_window_s, keys)
        self._latest: datetime | None = None
        # Unique tokens for "every record counts" windows, where no natural id distinguishes them.
        self._tokens = count()

    def observe(self, event: PersonalDataAccessed) -> list[AlertRaised]:
        at = _utc(event.occurred_at)
        self._advance(at)
        return [
            *self._check_mass_read(event, at),
            *self._check_policy(event, at),
            *self._check_erased(event, at),
            *self._check_stuffing(event, at),
            *self._check_recovery(event, at),
        ]

    def note_erased(self, subject_id: str, at: datetime) -> None:
        """A subject was erased at `at` (from an erase record or identity's SubjectErased)."""
        if subject_id in _UNRESOLVED:
            return
        at = _utc(at)
        known = self._erased.get(subject_id)
        self._erased[subject_id] = at if known is None else min(known, at)
        if len(self._erased) > self.config.max_erased_subjects:
            self._erased.popitem(last=False)

    def state_size(self) -> int:
        """Entries held across every tracker: what the memory bound is about."""
        parts = sum(part.size() for part in self._parts())
        return len(self._erased) + parts

    def _check_mass_read(self, event: PersonalDataAccessed, at: datetime) -> list[AlertRaised]:
        # An export is a read too, and usually a bigger one.
        reading = event.action in {"read", "export"} and event.outcome == "success"
        if not reading or event.subject_id in _UNRESOLVED:
            return []
        rule = self._mass_read
        hit = rule.hit(event.actor_id, event.subject_id, at)
        if hit is None:
            return []
        detail = f"{hit.count} distinct subjects read by one {_names([event.actor_role])}"
        key = f"actor:{event.actor_id}"
        ids = _Ids(actor_id=event.actor_id)
        return [_alert(Rule.MASS_READ, "high", key, hit, rule.window_s, detail, ids)]

    def _check_policy(self, event: PersonalDataAccessed, at: datetime) -> list[AlertRaised]:
        if event.outcome != "denied" or event.action not in _DATA_ACTIONS:
            return []
        alerts: list[AlertRaised] = []
        actor, window_s = event.actor_id, self._denials.window_s
        if self._denied.first(actor, at):
            detail = f"{event.action} denied: {_describe(event)}"
            key = f"actor:{actor}"
            hit = _Hit(1, at, at)
            alerts.append(
                _alert(Rule.POLICY_VIOLATION, "medium", key, hit, window_s, detail, _Ids.of(event))
            )
        burst = self._denials.hit(actor, next(self._tokens), at)
        if burst is not None:
            detail = f"repeated denials: {burst.count} by one {_names([event.actor_role])}"
            key = f"actor:{actor}:repeated"
            ids = _Ids(actor_id=actor)
            alerts.append(_alert(Rule.POLICY_VIOLATION, "high", key, burst, window_s, detail, ids))
        return alerts

    def _check_erased(self, event: PersonalDataAccessed, at: datetime) -> list[AlertRaised]:
        subject = event.subject_id
        if event.action == "erase":
            # Erasing again is idempotent and harmless; only the first success marks the subject.
            if event.outcome == "success":
                self.note_erased(subject, at)
            return []
        erased_at = self._erased.get(subject)
        if erased_at is None or at <= erased_at or not self._erased_once.first(subject, at):
            return []
        detail = f"{event.action} {event.outcome} after erasure: {_describe(event)}"
        window_s = self.config.erased_window_s
        key = f"subject:{subject}"
        hit, ids = _Hit(1, at, at), _Ids.of(event)
        return [_alert(Rule.ERASED_SUBJECT_ACCESS, "high", key, hit, window_s, detail, ids)]

    def _check_stuffing(self, event: PersonalDataAccessed, at: datetime) -> list[AlertRaised]:
        if event.action != "login" or event.outcome not in _FAILED:
            return []
        account = self._account(event)
        alerts: list[AlertRaised] = []
        source, rule = event.source_ref, self._stuffing
        hit = None if source is None else rule.hit(source, account, at)
        if hit is not None:
            detail = f"login failures across {hit.count} accounts from one source"
            key = f"source:{source}"
            ids = _Ids(source_ref=source)
            alerts.append(
                _alert(Rule.CREDENTIAL_STUFFING, "high", key, hit, rule.window_s, detail, ids)
            )
        alerts.extend(self._check_global_stuffing(account, at))
        return alerts

    def _check_global_stuffing(self, account: Hashable, at: datetime) -> list[AlertRaised]:
        c = self.config
        fails, first = self._global_fails.add(_GLOBAL, next(self._tokens), at)
        accounts, _ = self._global_accounts.add(_GLOBAL, account, at)
        below = fails < c.stuffing_global_failures or accounts < c.stuffing_global_accounts
        if below or not self._global_once.first(_GLOBAL, at):
            return []
        detail = f"{fails} login failures across at least {accounts} accounts"
        hit = _Hit(fails, first, at)
        window_s = c.stuffing_window_s
        return [_alert(Rule.CREDENTIAL_STUFFING, "high", _GLOBAL, hit, window_s, detail, _Ids())]

    def _check_recovery(self, event: PersonalDataAccessed, at: datetime) -> list[AlertRaised]:
        if event.action != "recovery" or event.outcome not in _FAILED:
            return []
        alerts: list[AlertRaised] = []
        token, subject, source = next(self._tokens), event.subject_id, event.source_ref
        window_s = self._recovery_subject.window_s
        if subject not in _UNRESOLVED:
            hit = self._recovery_subject.hit(subject, token, at)
            if hit is not None:
                detail = f"{hit.count} failed recovery attempts on one account"
                key, ids = f"subject:{subject}", _Ids(subject_id=subject)
                alerts.append(_alert(Rule.RECOVERY_ABUSE, "high", key, hit, window_s, detail, ids))
        hit = None if source is None else self._recovery_source.hit(source, token, at)
        if hit is not None:
            detail = f"{hit.count} failed recovery attempts from one source"
            key, ids = f"source:{source}", _Ids(source_ref=source)
            alerts.append(_alert(Rule.RECOVERY_ABUSE, "high", key, hit, window_s, detail, ids))
        return alerts

    def _account(self, event: PersonalDataAccessed) -> Hashable:
        """The account a login tried. Unknown identifiers all read "unknown": each attempt on one
        counts as a distinct account, since stuffing lists are mostly distinct names."""
        if event.subject_id not in _UNRESOLVED:
            return event.subject_id
        return ("?", event.request_id or next(self._tokens))

    def _advance(self, at: datetime) -> None:
        if self._latest is not None and at <= self._latest:
            return
        self._latest = at
        for part in self._parts():
            part.prune(at)

    def _parts(self) -> Iterator[_Windows | _Once | _Threshold]:
        yield from (self._mass_read, self._denied, self._denials, self._erased_once)
        yield from (self._stuffing, self._global_fails, self._global_accounts, self._global_once)
        yield from (self._recovery_subject, self._recovery_source)


def _describe(event: PersonalDataAccessed) -> str:
    fields = _names(event.fields)
    return f"role {_names([event.actor_role])}, purpose {_names([event.purpose])}, fields {fields}"
