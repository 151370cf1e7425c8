"""The audit service's record MAC key set (moment_crypto.record_mac), read from Vault KV.

Read at start-up, before the first record is taken: without it the service would store records
no checkpoint may ever cover, so any failure then stops the start. Refreshed every
`refresh_seconds` after (a rotation adds a version first, then moves "current"); a failed refresh
keeps the keys held. Without Vault (dev only) records carry no MAC and nothing is signed anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from moment_audit.config import RecordMacConfig
from moment_crypto.config import VaultConfig
from moment_crypto.errors import CryptoError
from moment_crypto.keysets import VersionedKeys
from moment_crypto.record_mac import RecordMacs
from moment_crypto.vault import VaultClient

log = logging.getLogger(__name__)


class RecordKeys:
    def __init__(
        self, config: RecordMacConfig, vault: VaultClient | None, macs: RecordMacs | None = None
    ) -> None:
        """`macs` preset for a process without Vault (a benchmark's or a test's)."""
        self._config = config
        self._vault = vault
        self._macs = macs
        self._task: asyncio.Task[None] | None = None

    def current(self) -> RecordMacs | None:
        return self._macs

    async def load(self) -> None:
        """Read the key set; raises CryptoError when Vault or the key set can't be read."""
        if self._vault is None:
            log.warning("no Vault configured: audit records carry no MAC (dev only)")
            return
        self._macs = RecordMacs(await VersionedKeys.load(self._vault, self._config.key_path))

    async def _refreshing(self) -> None:
        while True:
            await asyncio.sleep(self._config.refresh_seconds)
            try:
                await self.load()
            except CryptoError as exc:
                log.warning("audit record MAC key not refreshed, will retry: %s", exc)

    def start(self) -> None:
        if self._vault is not None:
            self._task = asyncio.create_task(self._refreshing(), name="audit-record-keys")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def read_record_macs(vault: VaultClient, key_path: str) -> RecordMacs | None:
    """For one run (verify): the key set, or None when this identity can't read it."""
    try:
        return RecordMacs(await VersionedKeys.load(vault, key_path))
    except CryptoError as exc:
        log.info("record MAC key not readable: %s", exc)
        return None


async def config_record_macs(config: VaultConfig | None, key_path: str) -> RecordMacs | None:
    """For `moment-audit verify`: the key set when its Vault identity (audit's AppRole) may read
    it, else None (verify then says record MACs were not checked)."""
    if config is None:
        return None
    try:
        async with VaultClient(config) as vault:
            return await read_record_macs(vault, key_path)
    except CryptoError as exc:
        log.info("record MAC key not readable: %s", exc)
        return None
