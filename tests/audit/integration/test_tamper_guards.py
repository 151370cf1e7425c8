"""Trust no derived guarantee: a database superuser without the Vault key gets around the CHECK,
the unique constraints, the triggers and the grants, and `moment-audit verify` names each.

The store is test_tamper's (two chained partitions of six records, each signed by a real
OpenBao). The attacker holds the database as its superuser and can run any SQL, so they think
of the clever variant: put the catalog back the way it looked, re-chain a replay correctly,
shadow an operator rather than drop the constraint. Verify answers with what it checks itself:
every row against its hashed document (COLUMN MISMATCH), every (source, event id) across the
store (DUPLICATE EVENT), and every guard the append-only promise rests on, read from the live
catalog (GUARD MISSING).
"""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import insert, make_url, select, text
from sqlalchemy.exc import DBAPIError

from moment_audit.adapters.agreement import CONSTRAINT, FUNCTION_SQL, POSTGRESQL_CHECK
from moment_audit.adapters.db_roles import READER, WRITER, apply_roles
from moment_audit.adapters.orm import audit_records, metadata
from moment_audit.adapters.repositories import row_of
from moment_audit.domain.chain import ChainHead, extend
from tests.audit.integration import test_tamper
from tests.audit.integration.test_tamper import Store, run_verify

# test_tamper's signed store, on each dialect.
audit_credentials = test_tamper.audit_credentials
store = test_tamper.store
store_env = test_tamper.store_env

GUARDS = importlib.import_module("moment_audit.migrations.versions.0009_guards_pinned_and_named")
MISMATCH = "partition 1 seq 2: COLUMN MISMATCH (disagrees with its document: purpose)"
MARKETING = "UPDATE audit_records SET purpose = 'marketing' WHERE chain_partition = 1 AND seq = 2"
# What the replay of partition 0's seq 2 at partition 1 seq 7 is named.
REPLAYED = "partition 1 seq 7: DUPLICATE EVENT (event already stored at partition 0 seq 2)"
# Findings verify derives from a chain, not from the guards: none may name a replay.
CHAIN_FINDINGS = ("MODIFIED", "INSERTED", "REORDERED", "DELETED", "TRUNCATED")


def guard(detail: str) -> str:
    return f"schema: GUARD MISSING ({detail})"


async def as_owner(store: Store, *statements: str) -> None:
    """Statements the tables' owner runs in an ordinary session (no trigger bypass)."""
    async with store.database.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def verify_lines(store_env: dict[str, str]) -> list[str]:
    code, out = await run_verify(store_env)
    assert code == 1, out
    return out.splitlines()


def without_clause(create_table: str, name: str) -> str:
    """A CREATE TABLE statement without its constraint `name` (parentheses balanced)."""
    start = re.search(rf",\s*CONSTRAINT {name} ", create_table)
    assert start is not None, create_table
    depth, end = 0, create_table.index("(", start.end())
    while True:
        depth += {"(": 1, ")": -1}.get(create_table[end], 0)
        if depth == 0:
            return create_table[: start.start()] + create_table[end + 1 :]
        end += 1


async def rebuild_records_without(store: Store, name: str, *then: str) -> None:
    """SQLite: audit_records rebuilt without one constraint, every row and index kept."""
    async with store.database.engine.connect() as connection:
        create = str(
            await connection.scalar(
                text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                {"t": "audit_records"},
            )
        )
        indexes = list(
            await connection.scalars(
                text("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            )
        )
    weaker = without_clause(create, name).replace(
        "CREATE TABLE audit_records", "CREATE TABLE audit_records_new", 1
    )
    await store.tamper(
        weaker,
        "INSERT INTO audit_records_new SELECT * FROM audit_records",
        "DROP TABLE audit_records",
        "ALTER TABLE audit_records_new RENAME TO audit_records",
        *(sql for sql in indexes if " ON audit_records " in sql),
        *then,
    )


async def replay(store: Store) -> None:
    """Partition 0's seq 2 again, chained correctly after partition 1's head, head moved."""
    async with store.uow() as uow:
        query = select(audit_records).where(audit_records.c.seq == 2)
        original = (
            (await uow.session.execute(query.where(audit_records.c.chain_partition == 0)))
            .mappings()
            .one()
        )
        last_hash = await uow.session.scalar(
            select(audit_records.c.record_hash).where(
                audit_records.c.chain_partition == 1, audit_records.c.seq == 6
            )
        )
    link = extend(ChainHead(1, 6, str(last_hash)), dict(original))
    row = row_of(
        link, original["kafka_partition"], original["kafka_offset"], original["received_at"]
    )
    await store.tamper(
        insert(audit_records).values(row),
        f"UPDATE audit_chain_heads SET seq = 7, hash = '{link.record_hash}' "
        "WHERE chain_partition = 1",
    )


Attack = Callable[[Store], Awaitable[Any]]


async def _pg_not_valid_marked_valid(store: Store) -> None:
    await store.tamper(
        f"ALTER TABLE audit_records DROP CONSTRAINT {CONSTRAINT}",
        MARKETING,
        f"ALTER TABLE audit_records ADD CONSTRAINT {CONSTRAINT} CHECK ({POSTGRESQL_CHECK}) "
        "NOT VALID",
        f"UPDATE pg_constraint SET convalidated = true WHERE conname = '{CONSTRAINT}'",
    )


async def _pg_function_swapped_and_restored(store: Store) -> None:
    always = re.sub(r"AS \$\$.*\$\$", "AS $$ SELECT true $$", FUNCTION_SQL, flags=re.DOTALL)
    await store.tamper(always, MARKETING, FUNCTION_SQL)


async def _pg_shadowing_operator(store: Store) -> None:
    # The pinned function cannot be fooled: the attacker brings 0004's back for the edit.
    await store.tamper(
        "CREATE SCHEMA shadow",
        "CREATE FUNCTION shadow.agree(jsonb, jsonb) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
        "CREATE OPERATOR shadow.= (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = shadow.agree)",
        GUARDS.PG_AGREES_UNPINNED,
        "SET LOCAL search_path = shadow, pg_catalog, public",
        MARKETING,
        "SET LOCAL search_path = public",
        FUNCTION_SQL,
        "DROP SCHEMA shadow CASCADE",
    )


async def _pg_replay_without_unique(store: Store) -> None:
    await store.tamper("ALTER TABLE audit_records DROP CONSTRAINT uq_audit_records_source_event")
    await replay(store)


async def _pg_replay_unique_index_demoted(store: Store) -> None:
    # The constraint stays in pg_constraint; only its index stops enforcing it.
    await store.tamper(
        "UPDATE pg_index SET indisunique = false "
        "WHERE indexrelid = 'uq_audit_records_source_event'::regclass"
    )
    await replay(store)


async def _sqlite_replay_without_unique(store: Store) -> None:
    await rebuild_records_without(store, "uq_audit_records_source_event")
    await replay(store)


async def _sqlite_check_dropped(store: Store) -> None:
    await rebuild_records_without(store, CONSTRAINT, MARKETING)


def owner(*statements: str) -> Attack:
    async def attack(store: Store) -> None:
        await as_owner(store, *statements)

    return attack


async def _pg_replica_by_default(store: Store) -> None:
    async with store.database.engine.connect() as connection:
        name = await connection.scalar(text("SELECT current_database()"))
    await as_owner(store, f'ALTER DATABASE "{name}" SET session_replication_role = replica')


STRANGER = "trigger {name} on {table} is not one of the guards: it can change or drop writes"
REJECT_LETS_THROUGH = (
    "CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path = pg_catalog, public, pg_temp AS $$ BEGIN "
    "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END; $$"
)

ATTACKS: dict[tuple[str, str], tuple[Attack, list[str]]] = {
    ("postgresql", "not valid, marked valid in pg_constraint"): (
        _pg_not_valid_marked_valid,
        [MISMATCH],
    ),
    ("postgresql", "function body swapped, then restored"): (
        _pg_function_swapped_and_restored,
        [MISMATCH],
    ),
    ("postgresql", "shadowing = in front of pg_catalog"): (_pg_shadowing_operator, [MISMATCH]),
    ("postgresql", "unique constraint dropped, event replayed"): (
        _pg_replay_without_unique,
        [guard("uq_audit_records_source_event on audit_records is gone"), REPLAYED],
    ),
    ("postgresql", "unique index demoted in pg_index, event replayed"): (
        _pg_replay_unique_index_demoted,
        [
            guard(
                "uq_audit_records_source_event on audit_records is not valid or its index is not"
            ),
            REPLAYED,
        ],
    ),
    ("sqlite", "unique constraint dropped, event replayed"): (
        _sqlite_replay_without_unique,
        [guard("uq_audit_records_source_event on audit_records is gone"), REPLAYED],
    ),
    ("sqlite", "check dropped, column edited"): (
        _sqlite_check_dropped,
        [
            f"schema: UNGUARDED COLUMN ({CONSTRAINT} is gone or changed: no column is tied to "
            "its document)",
            MISMATCH,
        ],
    ),
    ("postgresql", "trigger disabled"): (
        owner("ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only"),
        [guard("trigger audit_records_append_only on audit_records is disabled")],
    ),
    ("postgresql", "triggers disabled on every table"): (
        owner(*(f"ALTER TABLE {t} DISABLE TRIGGER ALL" for t in GUARDS.APPEND_ONLY)),
        [guard(f"trigger {t[0]} on {t[1]} is disabled") for t in GUARDS.PG_TRIGGERS],
    ),
    ("postgresql", "trigger for replicas only"): (
        owner("ALTER TABLE audit_checkpoints ENABLE REPLICA TRIGGER audit_checkpoints_append_only"),
        [
            guard(
                "trigger audit_checkpoints_append_only on audit_checkpoints "
                "fires only in replica mode"
            )
        ],
    ),
    ("postgresql", "replica mode by default"): (
        _pg_replica_by_default,
        [guard("session_replication_role defaults to replica: triggers do not fire")],
    ),
    ("postgresql", "trigger dropped"): (
        owner("DROP TRIGGER audit_records_no_truncate ON audit_records"),
        [guard("trigger audit_records_no_truncate on audit_records is gone")],
    ),
    ("postgresql", "trigger re-created to fire never"): (
        owner(
            "DROP TRIGGER audit_records_append_only ON audit_records",
            "CREATE TRIGGER audit_records_append_only BEFORE UPDATE ON audit_records "
            "FOR EACH ROW WHEN (false) EXECUTE FUNCTION audit_reject_change()",
        ),
        [
            guard(
                "trigger audit_records_append_only on audit_records "
                "fires on other events or rows than UPDATE"
            )
        ],
    ),
    ("postgresql", "trigger function lets changes through"): (
        owner(REJECT_LETS_THROUGH),
        [guard("audit_reject_change() is redefined")],
    ),
    ("postgresql", "trigger function search_path reset"): (
        owner("ALTER FUNCTION audit_delete_below_horizon() RESET search_path"),
        [guard("audit_delete_below_horizon() runs with another search_path: None")],
    ),
    ("postgresql", "UPDATE and DELETE granted to PUBLIC"): (
        owner("GRANT UPDATE, DELETE ON audit_records TO PUBLIC"),
        [
            guard("PUBLIC holds DELETE on audit_records"),
            guard("PUBLIC holds UPDATE on audit_records"),
        ],
    ),
    ("postgresql", "row-level security hides rows"): (
        owner("ALTER TABLE audit_records ENABLE ROW LEVEL SECURITY"),
        [guard("row-level security on audit_records can hide rows from verify")],
    ),
    ("postgresql", "a trigger of the attacker's drops records"): (
        owner(
            "CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NULL; END; $$",
            "CREATE TRIGGER audit_records_swallow BEFORE INSERT ON audit_records "
            "FOR EACH ROW EXECUTE FUNCTION swallow()",
        ),
        [guard(STRANGER.format(name="audit_records_swallow", table="audit_records"))],
    ),
    ("sqlite", "a trigger of the attacker's drops records"): (
        owner(
            "CREATE TRIGGER audit_records_swallow BEFORE INSERT ON audit_records "
            "BEGIN SELECT RAISE(IGNORE); END"
        ),
        [guard(STRANGER.format(name="audit_records_swallow", table="audit_records"))],
    ),
    ("sqlite", "trigger dropped"): (
        owner("DROP TRIGGER audit_records_no_update"),
        [guard("trigger audit_records_no_update is gone")],
    ),
    ("sqlite", "trigger re-created to fire never"): (
        owner(
            "DROP TRIGGER audit_checkpoints_no_delete",
            "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints "
            "WHEN 0 BEGIN SELECT RAISE(ABORT, 'audit store is append-only: DELETE rejected'); END",
        ),
        [guard("trigger audit_checkpoints_no_delete is changed")],
    ),
}


@pytest.mark.parametrize(("store", "case"), sorted(ATTACKS), indirect=["store"])
async def test_verify_names_each_guard_got_around(
    store: Store, store_env: dict[str, str], case: str
) -> None:
    attack, expected = ATTACKS[store.dialect, case]
    await attack(store)
    lines = await verify_lines(store_env)
    assert [line for line in lines if line in expected] == expected, lines
    if REPLAYED in expected:
        # Chained correctly: only the uniqueness check sees it.
        assert not [line for line in lines if any(kind in line for kind in CHAIN_FINDINGS)]
    if case == "replica mode by default":
        assert any("session_replication_role=replica for every role in" in x for x in lines)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_a_shadowing_operator_cannot_fool_the_pinned_check(store: Store) -> None:
    with pytest.raises(DBAPIError, match=r"(?i)check constraint"):
        await store.tamper(
            "CREATE SCHEMA shadow",
            "CREATE FUNCTION shadow.agree(jsonb, jsonb) RETURNS boolean LANGUAGE sql "
            "AS 'SELECT true'",
            "CREATE OPERATOR shadow.= (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = shadow.agree)",
            "SET LOCAL search_path = shadow, pg_catalog, public",
            MARKETING,
        )


async def test_an_untouched_store_has_every_guard(store: Store, store_env: dict[str, str]) -> None:
    code, out = await run_verify(store_env)
    assert (code, [line for line in out.splitlines() if "schema:" in line]) == (0, [])


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_grants_beyond_the_roles_plan_are_named_and_the_plan_is_not(
    store: Store, store_env: dict[str, str]
) -> None:
    # The plan lets the prune job DELETE records: that is no finding.
    await apply_roles(store.database.engine, metadata)
    code, out = await run_verify(store_env)
    assert (code, [line for line in out.splitlines() if "schema:" in line]) == (0, [])
    await as_owner(store, f"GRANT UPDATE, TRUNCATE ON audit_checkpoints TO {WRITER}")
    # Verify runs as the read-only role in production: the catalog tells it just as much.
    login = f"audit_login_{uuid.uuid4().hex[:10]}"
    await as_owner(store, f"CREATE ROLE {login} LOGIN IN ROLE {READER}")
    url = make_url(store.url).set(username=login).render_as_string(hide_password=False)
    try:
        lines = await verify_lines({**store_env, "MOMENT_AUDIT_DATABASE__URL": url})
    finally:
        await as_owner(store, f"DROP ROLE {login}")
    assert [line for line in lines if "schema:" in line] == [
        guard(f"{WRITER} holds TRUNCATE on audit_checkpoints"),
        guard(f"{WRITER} holds UPDATE on audit_checkpoints"),
    ]


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_a_role_of_the_plan_that_owns_a_table_is_named(
    store: Store, store_env: dict[str, str]
) -> None:
    # Owning the table, the writer could ALTER its triggers off: its grants say nothing then.
    await apply_roles(store.database.engine, metadata)
    await as_owner(store, f"ALTER TABLE audit_checkpoints OWNER TO {WRITER}")
    lines = await verify_lines(store_env)
    assert [line for line in lines if "schema:" in line] == [
        guard(f"{WRITER} can act as the owner of audit_checkpoints: it can switch triggers off")
    ]
