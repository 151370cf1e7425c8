"""Only known producers write the audit trail.

Anyone who can write to audit.events can set any `ce_source`, so ingest trusts none: each record
must carry its producer's MAC (moment_crypto.producer_mac), made with a key from Vault that only
that producer and this service may read. The check runs on each record before its body is parsed,
and so before de-duplication and chaining. A record that fails it goes to audit.events.dlq alone,
with reason `unauthenticated-producer`, while the valid records of its poll are stored; and a
`forged-producer` alert is raised on audit.alerts, one per claimed source per window.

Which sources are producers comes from configuration (`ProducersConfig.known`), their keys from
Vault at start-up and every `refresh_seconds` after: no Vault call per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord

from moment_audit.config import ProducersConfig
from moment_audit.domain.findings import forged_producer_alert
from moment_audit.service.watch import raise_new
from moment_contracts.alerts import AlertRaised
from moment_crypto.errors import CryptoError, VaultUnavailable
from moment_crypto.keysets import VersionedKeys
from moment_crypto.producer_mac import ProducerNotAuthenticated, ProducerVerifier
from moment_crypto.vault import VaultClient
from moment_messaging.deadletter import PermanentError, classify
from moment_persistence.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)
# Alert ids this instance raised lately: a flood costs no outbox look-up per poll.
_RECENT_ALERTS = 1024


class UnauthenticatedProducer(PermanentError):
    """The record does not prove that a known producer wrote it."""

    reason = "unauthenticated-producer"

    def __init__(self, source: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.source = source
        self.code = code


@dataclass(frozen=True)
class Forged:
    source: str
    code: str


def claimed_source(record: ConsumerRecord[Any, Any]) -> str:
    for name, value in record.headers or ():
        if name == "ce_source" and isinstance(value, bytes):
            return value.decode(errors="replace")
    return ""


class Producers:
    """The known producers and their current keys; `check` is what ingest calls per record."""

    def __init__(
        self,
        config: ProducersConfig,
        vault: VaultClient | None,
        keys: Mapping[str, VersionedKeys] | None = None,
    ) -> None:
        """`keys` preset, by producer, for a consumer without Vault (a benchmark's)."""
        self._config = config
        self._vault = vault
        self._verifier = ProducerVerifier(config.known, dict(keys or {}))
        self._task: asyncio.Task[None] | None = None

    def check(self, record: ConsumerRecord[Any, Any]) -> None:
        try:
            self._verifier.check(record.headers or (), record.value or b"")
        except ProducerNotAuthenticated as exc:
            raise UnauthenticatedProducer(claimed_source(record), exc.code, str(exc)) from None

    def proves(self, record: ConsumerRecord[Any, Any]) -> bool:
        try:
            self._verifier.check(record.headers or (), record.value or b"")
        except ProducerNotAuthenticated:
            return False
        return True

    async def load(self) -> None:
        """Read every known producer's key set. Vault being down is an error (no ingest without
        keys); a producer whose key set is missing or unreadable keeps the keys it had, if any,
        and its records are refused meanwhile."""
        if self._vault is None:
            log.warning("no Vault configured: no producer is proven, every audit event is refused")
            return
        keys = dict(self._verifier.keys)
        for producer in sorted(set(self._config.known.values())):
            path = f"{self._config.key_path}/{producer}"
            try:
                keys[producer] = await VersionedKeys.load(self._vault, path)
            except VaultUnavailable:
                raise
            except CryptoError as exc:
                log.warning("audit producer %s has no usable key set: %s", producer, exc)
        self._verifier = ProducerVerifier(self._config.known, keys)

    async def _refreshing(self) -> None:
        while True:
            await asyncio.sleep(self._config.refresh_seconds)
            try:
                await self.load()
            except CryptoError as exc:
                log.warning("audit producer keys not refreshed, will retry: %s", exc)

    def start(self) -> None:
        if self._vault is not None:
            self._task = asyncio.create_task(self._refreshing(), name="audit-producer-keys")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class ForgeryAlarm:
    """Raises `forged-producer` alerts through the outbox: one per source per window, whatever
    the number of records (each of which still goes to the dead-letter topic)."""

    def __init__(self, uow_factory: Callable[[], SqlUnitOfWork], window_s: int) -> None:
        self._uow_factory = uow_factory
        self._window_s = window_s
        self._recent: dict[str, None] = {}

    def alerts(self, forged: Sequence[Forged], at: datetime) -> list[AlertRaised]:
        by_source: dict[str, list[str]] = {}
        for item in forged:
            by_source.setdefault(item.source, []).append(item.code)
        alerts = [
            forged_producer_alert(source, codes, len(codes), at, self._window_s)
            for source, codes in by_source.items()
        ]
        return [a for a in alerts if a.alert_id not in self._recent]

    async def raise_for(self, forged: Sequence[Forged]) -> list[AlertRaised]:
        alerts = self.alerts(forged, datetime.now(UTC))
        if not alerts:
            return []
        async with self._uow_factory() as uow:
            raised = await raise_new(uow.session, alerts)
            await uow.commit()
        for alert in alerts:
            self._recent[alert.alert_id] = None
        while len(self._recent) > _RECENT_ALERTS:
            del self._recent[next(iter(self._recent))]
        if raised:
            log.warning("audit events from unproven producers refused: %d alerts", len(raised))
        return raised


class ProducerGate:
    """What the audit.events consumer needs: the per-record check, and the alarm for a poll's
    refusals."""

    def __init__(self, producers: Producers, alarm: ForgeryAlarm) -> None:
        self.producers = producers
        self.alarm = alarm

    def check(self, record: ConsumerRecord[Any, Any]) -> None:
        self.producers.check(record)

    async def report(
        self, rejected: Sequence[tuple[ConsumerRecord[Any, Any], BaseException]]
    ) -> list[AlertRaised]:
        """Alert on every refused record no known producer vouches for: those refused for their
        MAC, and those refused earlier (not a CloudEvent, an unknown type) that carry none."""
        forged = [
            Forged(exc.source, exc.code)
            if isinstance(exc, UnauthenticatedProducer)
            else Forged(claimed_source(record), "unproven-" + classify(exc)[0])
            for record, exc in rejected
            if isinstance(exc, UnauthenticatedProducer) or not self.producers.proves(record)
        ]
        return await self.alarm.raise_for(forged) if forged else []
