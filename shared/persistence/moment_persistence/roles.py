"""Least-privilege PostgreSQL roles for a service's tables, as idempotent SQL.

Migrations run as the schema's owner; a service runs as a login role that is a member of one of
these group roles and owns nothing, so it cannot ALTER a table, disable a trigger or grant itself
more. Each plan is re-applied after every migration: REVOKE first, then GRANT exactly what the plan
lists, so a privilege dropped from the plan is really taken away. SQLite has no roles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql

READ: tuple[str, ...] = ("SELECT",)
APPEND: tuple[str, ...] = ("SELECT", "INSERT")
READ_WRITE: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
_PRIVILEGES = frozenset(READ_WRITE)
# Role names end up inside a DO block's string literal too: keep them plain identifiers.
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PREPARER = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def _quote(name: str) -> str:
    return str(_PREPARER.quote(name))


class UnknownTable(ValueError):
    """A plan names a table its metadata does not define."""


@dataclass(frozen=True)
class RolePlan:
    """One group role: the privileges it holds on each table; none on any other table."""

    role: str
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ROLE_NAME.fullmatch(self.role):
            raise ValueError("role names are lower-case letters, digits and underscores")

    def statements(self, metadata: MetaData, schema: str = "public") -> list[str]:
        for table, privileges in self.tables.items():
            if table not in metadata.tables:
                raise UnknownTable(f"role {self.role} names unknown table {table}")
            if not set(privileges) <= _PRIVILEGES:
                raise ValueError(f"role {self.role}: unsupported privileges on {table}")
        role = _quote(self.role)
        every = ", ".join(_quote(name) for name in sorted(metadata.tables))
        lines = [
            # No CREATE ROLE IF NOT EXISTS; roles are cluster-wide, databases share them.
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{self.role}') "  # noqa: S608 -- checked name
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$",
            f"GRANT USAGE ON SCHEMA {_quote(schema)} TO {role}",
            f"REVOKE ALL ON TABLE {every} FROM {role}",
        ]
        for table, privileges in sorted(self.tables.items()):
            lines.append(f"GRANT {', '.join(privileges)} ON TABLE {_quote(table)} TO {role}")
        # Identity columns draw from sequences: INSERT needs USAGE on them.
        lines.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_quote(schema)} TO {role}")
        return lines


def plan_statements(plans: Iterable[RolePlan], metadata: MetaData) -> list[str]:
    return [line for plan in plans for line in plan.statements(metadata)]
