"""KeyCache: TTL expiry, LRU size bound, eviction and zeroing of evicted keys."""

from __future__ import annotations

import pytest

from moment_crypto import KeyCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_expiry() -> None:
    clock = FakeClock()
    cache = KeyCache(max_size=10, ttl_s=5, clock=clock)
    cache.put("a", 1, b"k" * 32)
    clock.now += 4.9
    assert cache.get("a", 1) == b"k" * 32
    clock.now += 0.2
    assert cache.get("a", 1) is None
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (1, 1)


def test_size_bound_evicts_least_recently_used() -> None:
    cache = KeyCache(max_size=3, ttl_s=60)
    for name in "abc":
        cache.put(name, 1, name.encode() * 32)
    assert cache.get("a", 1) is not None  # "a" becomes most recent, so "b" is the LRU
    cache.put("d", 1, b"d" * 32)
    assert len(cache) == 3
    assert cache.get("b", 1) is None
    assert all(cache.get(name, 1) is not None for name in "acd")


def test_evict_one_version_or_all() -> None:
    cache = KeyCache(max_size=10, ttl_s=60)
    cache.put("a", 1, b"1" * 32)
    cache.put("a", 2, b"2" * 32)
    cache.put("b", 1, b"3" * 32)
    assert cache.evict("a", 2) == 1
    assert cache.get("a", 1) is not None
    assert cache.evict("a") == 1
    assert cache.get("a", 1) is None
    assert cache.get("b", 1) is not None
    cache.clear()
    assert len(cache) == 0


def test_evicted_buffers_are_zeroed() -> None:
    cache = KeyCache(max_size=1, ttl_s=60)
    cache.put("a", 1, b"\xff" * 32)
    buffer = cache._entries["a", 1].key
    cache.put("b", 1, b"\xee" * 32)
    assert buffer == bytearray(32)


def test_returned_key_is_a_copy() -> None:
    cache = KeyCache(max_size=1, ttl_s=60)
    cache.put("a", 1, b"\x01" * 32)
    key = cache.get("a", 1)
    cache.clear()
    assert key == b"\x01" * 32


def test_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        KeyCache(max_size=0, ttl_s=1)
