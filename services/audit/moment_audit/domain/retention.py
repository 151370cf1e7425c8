"""Retention horizons: where a pruned chain now starts, and what makes one trustworthy. Pure.

Pruning removes a partition's oldest records up to a signed checkpoint and records a horizon at
that checkpoint's seq and hash; verify then starts that partition's walk from the horizon instead
of the genesis hash. The horizon is signed too, with the checkpoint key, so a DBA who can bypass
the triggers cannot forge one to excuse records they deleted: they can only delete the horizon as
well, and then every record below it is missing (DELETED) as before.

A horizon rests only on a checkpoint signed before its cut-off. The checkpoint's created_at is
signed by the service at signing time, so "every pruned record was stored before the cut-off"
follows from signed data alone: the chain head a checkpoint signs was committed before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

import rfc8785

from moment_audit.domain.chain import ChainHead, iso_utc

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class SignedCheckpoint(Protocol):
    @property
    def partition(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def signature(self) -> str: ...
    def payload(self) -> bytes: ...


_C = TypeVar("_C", bound=SignedCheckpoint)


@dataclass(frozen=True)
class Horizon:
    """Records of `partition` at or below `seq` are pruned; `hash` is the record at `seq`'s."""

    partition: int
    seq: int
    hash: str
    # Every pruned record was stored, and occurred, before this instant.
    cutoff: datetime
    pruned_at: datetime
    # How many records this horizon removed from the chain (those above the previous horizon).
    records: int
    signature: str = ""

    @property
    def start(self) -> ChainHead:
        return ChainHead(self.partition, self.seq, self.hash)


def horizon_payload(horizon: Horizon) -> bytes:
    """The bytes a horizon's signature covers; `kind` keeps it apart from a checkpoint's."""
    return rfc8785.dumps(
        {
            "kind": "retention-horizon",
            "partition": horizon.partition,
            "seq": horizon.seq,
            "hash": horizon.hash,
            "cutoff": iso_utc(horizon.cutoff),
            "pruned_at": iso_utc(horizon.pruned_at),
            "records": horizon.records,
        }
    )


def _aware(moment: datetime) -> datetime:
    return datetime.fromisoformat(iso_utc(moment))


def horizon_problem(
    horizon: Horizon,
    checkpoint: SignedCheckpoint | None,
    check: Callable[[bytes, str], bool],
) -> str | None:
    """Why `horizon` cannot be trusted as a chain's start, or None when it can."""
    if checkpoint is None:
        return "no checkpoint at this seq"
    if checkpoint.hash != horizon.hash:
        return "its hash is not its checkpoint's"
    if not check(checkpoint.payload(), checkpoint.signature):
        return "its checkpoint's signature fails"
    if not check(horizon_payload(horizon), horizon.signature):
        return "its signature fails"
    return _timing_problem(horizon, checkpoint.created_at)


def _timing_problem(horizon: Horizon, checkpoint_signed_at: datetime) -> str | None:
    # Both instants are signed, so these only catch a pruner's bug or a misused key.
    if _aware(checkpoint_signed_at) >= _aware(horizon.cutoff):
        return "its checkpoint was signed after its cut-off"
    if _aware(horizon.cutoff) > _aware(horizon.pruned_at):
        return "its cut-off is later than its pruning"
    return None


def choose_checkpoint(
    checkpoints: Iterable[_C], cutoff: datetime, after_seq: int, first_young_seq: int | None
) -> _C | None:
    """The newest checkpoint above `after_seq` that a horizon may rest on at `cutoff`.

    It must be signed before the cut-off, and lie below `first_young_seq`, the partition's first
    record stored or dated at or after the cut-off (None: there is none).
    """
    usable = [
        cp
        for cp in checkpoints
        if cp.seq > after_seq
        and _aware(cp.created_at) < _aware(cutoff)
        and (first_young_seq is None or cp.seq < first_young_seq)
    ]
    return max(usable, key=lambda cp: cp.seq, default=None)


def parse_duration(text: str) -> timedelta:
    """ "400d", "12h", "90m", "30s", "2w", or a sum of them such as "1d12h"."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError("a duration is digits and a unit (s, m, h, d, w), e.g. 400d or 1d12h")
    return sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())
