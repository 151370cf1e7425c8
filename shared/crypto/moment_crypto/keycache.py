"""A bounded LRU cache with a TTL for unwrapped subject data keys.

Keys live as bytearrays so they can be overwritten with zeros when they leave the cache. This is
best effort: `get` hands out immutable bytes copies that Python may keep until collected.
A lock makes it safe to share with worker threads; asyncio code never blocks on it for long.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

CacheKey = tuple[str, int]
"""(subject_id, key_version)."""


@dataclass
class _Entry:
    key: bytearray
    expires_at: float


def _wipe(buffer: bytearray) -> None:
    buffer[:] = bytes(len(buffer))


class KeyCache:
    """LRU + TTL map from (subject_id, key_version) to data key bytes."""

    def __init__(
        self,
        max_size: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1 or ttl_s <= 0:
            raise ValueError("KeyCache needs max_size >= 1 and ttl_s > 0")
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"KeyCache(size={len(self._entries)}, max_size={self._max_size}, ttl_s={self._ttl_s})"
        )

    def get(self, subject_id: str, version: int) -> bytes | None:
        """The cached key, or None when absent or expired (an expired entry is wiped)."""
        cache_key = (subject_id, version)
        with self._lock:
            entry = self._entries.get(cache_key)
            if entry is not None and entry.expires_at <= self._clock():
                _wipe(self._entries.pop(cache_key).key)
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(cache_key)
            self.hits += 1
            return bytes(entry.key)

    def put(self, subject_id: str, version: int, key: bytes) -> None:
        """Cache a key, evicting the least recently used entries beyond the size bound."""
        cache_key = (subject_id, version)
        entry = _Entry(bytearray(key), self._clock() + self._ttl_s)
        with self._lock:
            previous = self._entries.pop(cache_key, None)
            if previous is not None:
                _wipe(previous.key)
            self._entries[cache_key] = entry
            while len(self._entries) > self._max_size:
                _wipe(self._entries.popitem(last=False)[1].key)

    def evict(self, subject_id: str, version: int | None = None) -> int:
        """Drop one version of a subject's key, or every version when `version` is None."""
        with self._lock:
            if version is not None:
                doomed = [(subject_id, version)] if (subject_id, version) in self._entries else []
            else:
                # A linear scan: erasure is rare, and a per-subject index would cost every put.
                doomed = [k for k in self._entries if k[0] == subject_id]
            for cache_key in doomed:
                _wipe(self._entries.pop(cache_key).key)
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                _wipe(entry.key)
            self._entries.clear()
