"""The SQL that ties audit_records' query columns to the hashed `document`, per dialect.

A CHECK constraint (`ck_audit_records_document_agrees`) makes the database refuse any row whose
columns say something its document does not. PostgreSQL parses the document once per row in
`audit_document_agrees` (about 20 us a row; seventeen generated columns, each parsing it again,
cost about 140 us, more than the rest of ingest together). SQLite compares each column with
`json_extract`. Migration 0004 creates both, 0009 pins the function's search_path; verify checks
they are still in place (adapters/guarantees.py), and compares every row with its document
itself (domain/agreement_check.py), since a superuser can get around the CHECK and restore it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler, SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

CONSTRAINT = "ck_audit_records_document_agrees"
FUNCTION = "audit_document_agrees"

# (column, key in the document, kind): every query column, in the function's argument order.
DOCUMENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("source", "source", "text"),
    ("event_id", "event_id", "text"),
    ("action", "action", "text"),
    ("actor_id", "actor_id", "text"),
    ("actor_role", "actor_role", "text"),
    ("subject_id", "subject_id", "text"),
    ("fields", "fields", "json"),
    ("purpose", "purpose", "text"),
    ("outcome", "outcome", "text"),
    ("occurred_at", "occurred_at", "instant"),
    ("request_id", "request_id", "text"),
    ("trace_id", "trace_id", "text"),
    ("source_ref", "source_ref", "text"),
    ("producer_seq", "producer_seq", "bigint"),
    ("chain_partition", "partition", "integer"),
    ("seq", "seq", "bigint"),
    ("prev_hash", "prev_hash", "text"),
)

_PG_TYPES = {
    "text": "text",
    "json": "json",
    "instant": "timestamptz",
    "bigint": "bigint",
    "integer": "integer",
}
# iso_utc's spelling of an instant (domain/chain.py).
_PG_ISO_UTC = """to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
# The same in the function, which names pg_catalog's own (AT TIME ZONE is pg_catalog.timezone).
_PINNED_ISO_UTC = "pg_catalog." + _PG_ISO_UTC


def _pg_value(column: str, kind: str) -> str:
    if kind == "json":
        return f"CAST({column} AS pg_catalog.jsonb)"
    return _PINNED_ISO_UTC if kind == "instant" else column


# Not STRICT: a NULL argument (a NULL purpose) must be compared, not make the CHECK pass.
# Every operator, function and type is pg_catalog's and the search_path is pinned (migration
# 0009): a session whose search_path puts a schema with its own `=` first cannot make it pass.
# The pinned path keeps PostgreSQL from inlining the function: measured in the 0009 docstring.
FUNCTION_SEARCH_PATH = "pg_catalog, pg_temp"
FUNCTION_BODY = (
    "\nSELECT coalesce(CAST(document AS pg_catalog.jsonb) OPERATOR(pg_catalog.=) "
    "pg_catalog.jsonb_build_object(\n    "
    + ",\n    ".join(f"'{key}', {_pg_value(c, kind)}" for c, key, kind in DOCUMENT_COLUMNS)
    + "\n), false)\n"
)
FUNCTION_SQL = (
    f"CREATE OR REPLACE FUNCTION {FUNCTION}(document text, "
    + ", ".join(f"{c} {_PG_TYPES[kind]}" for c, _, kind in DOCUMENT_COLUMNS)
    + ") RETURNS boolean LANGUAGE sql IMMUTABLE "
    + f"SET search_path = {FUNCTION_SEARCH_PATH} AS $${FUNCTION_BODY}$$"
)
POSTGRESQL_CHECK = f"{FUNCTION}(document, {', '.join(c for c, _, _ in DOCUMENT_COLUMNS)})"


def _sqlite_term(column: str, key: str, kind: str) -> str:
    value = f"json_extract(document, '$.{key}')"
    if kind == "json":
        return f"json({column}) IS {value}"
    if kind == "instant":
        # SQLAlchemy's SQLite spelling of a UTC instant from the document's ISO 8601 one.
        value = f"(strftime('%Y-%m-%d %H:%M:%S', {value}) || substr({value}, 20, 7))"
    return f"{column} IS {value}"


# PostgreSQL's jsonb equality also refuses a key no column holds; json_remove does it here.
_SQLITE_NO_OTHER_KEY = (
    "json_remove(document, "
    + ", ".join(f"'$.{key}'" for _, key, _ in DOCUMENT_COLUMNS)
    + ") IS '{}'"
)
SQLITE_CHECK = " AND ".join(
    [*(_sqlite_term(*spec) for spec in DOCUMENT_COLUMNS), _SQLITE_NO_OTHER_KEY]
)

# PostgreSQL's writer: the columns are read from each document in SQL, parsed once, so the
# service sends six arrays rather than twenty-three values per record. record_mac (the service's
# own MAC over the record, moment_crypto.record_mac) is not read from the document.
# Built from the constants above only (hence the noqa).
POSTGRESQL_INSERT = f"""
INSERT INTO audit_records (document, record_hash, record_mac, kafka_partition, kafka_offset,
    received_at, {", ".join(c for c, _, _ in DOCUMENT_COLUMNS)})
SELECT d, h, m, kp, ko, CAST(:received_at AS timestamptz),
    {
    ", ".join(
        f"(j ->> '{key}')::{_PG_TYPES[kind]}" if kind != "json" else f"(j -> '{key}')::json"
        for _, key, kind in DOCUMENT_COLUMNS
    )
}
FROM (
    SELECT d, h, m, kp, ko, d::jsonb AS j
    FROM unnest(CAST(:documents AS text[]), CAST(:hashes AS text[]), CAST(:macs AS text[]),
                CAST(:partitions AS integer[]), CAST(:offsets AS bigint[]))
         AS u(d, h, m, kp, ko)
    -- OFFSET 0 keeps the planner from inlining d::jsonb into each column: one parse a row.
    OFFSET 0
) AS parsed
ON CONFLICT (source, event_id) DO NOTHING
RETURNING source, event_id
"""  # noqa: S608


class DocumentAgreement(ColumnElement[bool]):
    """The CHECK's condition, as each dialect spells it."""

    inherit_cache = True


@compiles(DocumentAgreement, "postgresql")
def _postgresql(
    _element: DocumentAgreement, _compiler: SQLCompiler | DDLCompiler, **_kw: Any
) -> str:
    return POSTGRESQL_CHECK


@compiles(DocumentAgreement, "sqlite")
def _sqlite(_element: DocumentAgreement, _compiler: SQLCompiler | DDLCompiler, **_kw: Any) -> str:
    return SQLITE_CHECK
