"""Verify's own check that each stored row says what its hashed document says. Pure: no I/O.

The CHECK constraint (adapters/agreement.py) refuses a disagreeing row on write, but it is the
database's guarantee: a superuser can re-add it NOT VALID and mark it valid in the catalog, swap
the function it calls and restore it, or shadow its `=` with a search_path. So verify parses
every document itself and compares it with the query columns that search, tail and the history
API answer from, and counts each (source, event id) across the whole store, which the unique
constraint guarantees only while nobody drops it.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moment_audit.domain.chain import iso_utc

# (column, key in the document, kind), as adapters/agreement.py DOCUMENT_COLUMNS spells them.
ColumnSpec = Sequence[tuple[str, str, str]]

# seq fits in 40 bits with room to spare; partition above it, so one int names a position.
_SEQ_BITS = 40
_SEQ_MASK = (1 << _SEQ_BITS) - 1


@dataclass(frozen=True)
class RowProblem:
    partition: int
    seq: int
    detail: str


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality without Python's 1 == True == 1.0."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(map(_same_json, a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def _agrees(kind: str, column: object, value: object) -> bool:
    if kind == "instant":
        return isinstance(column, datetime) and type(value) is str and _iso(column) == value
    if kind == "json":
        return _same_json(column, value)
    # text, bigint, integer: the same JSON scalar (None for NULL), never a bool for an int.
    return type(column) is type(value) and column == value


def disagreeing(document: object, row: Mapping[str, Any], columns: ColumnSpec) -> list[str]:
    """What in `row` disagrees with its parsed `document`: column names, or why none compare."""
    if type(document) is not dict:
        return ["document is not a JSON object"]
    wrong = [
        column
        for column, key, kind in columns
        if key not in document or not _agrees(kind, row[column], document[key])
    ]
    if len(document) != len(columns):
        extra = sorted(set(document) - {key for _, key, _ in columns})
        if extra:
            wrong.append("document has other keys: " + ", ".join(extra))
    return wrong


def event_key(source: object, event_id: object) -> bytes:
    """16 bytes per (source, event id): the whole store's keys fit in memory."""
    if type(source) is str and type(event_id) is str:
        # The length prefix keeps ("a", "bc") apart from ("ab", "c").
        joined = f"{len(source)}:{source}{event_id}"
    else:
        # Only a forged document gets here; JSON starts with "[", never with a digit.
        joined = json.dumps([source, event_id], ensure_ascii=False)
    return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _iso(moment: datetime) -> str:
    # iso_utc without its conversion when the driver already handed back UTC (most rows).
    if moment.tzinfo is UTC:
        return moment.isoformat(timespec="microseconds")
    return iso_utc(moment)


def _same_instant(moment: object, spelled: object) -> bool:
    """iso_utc(moment) == spelled, without formatting (a fifth of the time): parse the spelling,
    whose shape must be iso_utc's exactly ("2026-12-06T12:00:00.000000+00:00")."""
    if type(spelled) is not str or len(spelled) != 32 or not isinstance(moment, datetime):
        return False
    if spelled[10] != "T" or spelled[19] != "." or not spelled.endswith("+00:00"):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    try:
        return datetime.fromisoformat(spelled) == moment
    except ValueError:
        return False


class RowChecks:
    """Feed every stored row (as stream_chained reads it), then read the problems.

    `mismatches`: rows whose query columns disagree with their document (COLUMN MISMATCH).
    `duplicates`: later copies of a (source, event id) already seen (DUPLICATE EVENT), the detail
    naming the first copy's partition and seq.
    """

    def __init__(self, columns: ColumnSpec) -> None:
        self._columns = tuple(columns)
        plain = [(c, k) for c, k, kind in self._columns if kind != "instant"]
        # One C-level tuple each side: the fast path every agreeing row takes.
        self._row_values = operator.itemgetter(*(c for c, _ in plain))
        self._document_values = operator.itemgetter(*(k for _, k in plain))
        self._integers = [k for _, k, kind in self._columns if kind in {"bigint", "integer"}]
        self._json = [k for _, k, kind in self._columns if kind == "json"]
        self._instants = [(c, k) for c, k, kind in self._columns if kind == "instant"]
        self._first: dict[bytes, int] = {}
        self.mismatches: list[RowProblem] = []
        self.duplicates: list[RowProblem] = []

    def _agrees(self, document: dict[str, Any], row: Mapping[str, Any]) -> bool:
        """True when every column agrees; False sends the row to `disagreeing` for names."""
        try:
            if self._row_values(row) != self._document_values(document):
                return False
            # `==` holds 1 == True == 1.0: the integers must be integers in the document too.
            for key in self._integers:
                if type(document[key]) is not int and document[key] is not None:
                    return False
            # JSON compared by `==` above is exact for a list of strings (what ingest stores);
            # anything else goes the strict way, in `disagreeing`.
            for key in self._json:
                value = document[key]
                if type(value) is not list or any(type(item) is not str for item in value):
                    return False
            for column, key in self._instants:
                if not _same_instant(row[column], document[key]):
                    return False
        except KeyError:
            return False
        return len(document) == len(self._columns)

    def feed(self, row: Mapping[str, Any]) -> None:
        try:
            document = json.loads(row["document"])
        except (ValueError, UnicodeError):
            document = None
        partition, seq = row["chain_partition"], row["seq"]
        if type(document) is not dict or not self._agrees(document, row):
            wrong = disagreeing(document, row, self._columns)
            if wrong:
                detail = "disagrees with its document: " + ", ".join(wrong)
                self.mismatches.append(RowProblem(int(partition), int(seq), detail))
        if type(document) is dict:
            key = event_key(document.get("source"), document.get("event_id"))
            first = self._first.get(key)
            if first is None:
                self._first[key] = (partition << _SEQ_BITS) | (seq & _SEQ_MASK)
                return
            where = f"partition {first >> _SEQ_BITS} seq {first & _SEQ_MASK}"
            detail = f"event already stored at {where}"
            self.duplicates.append(RowProblem(int(partition), int(seq), detail))
