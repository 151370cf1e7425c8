"""Audit queries: who accessed a subject's data, when and why, from the CLI and over Kafka."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from moment_audit.adapters.orm import audit_records
from moment_audit.service.queries import AccessQuery, search
from moment_auth.principals import Principal, Role, ServiceAccount
from moment_auth.tokens import TokenSigner
from moment_client.audit import AuditClient
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_contracts import topics
from moment_contracts.audit import Outcome, PersonalDataAccessed
from moment_contracts.audit_queries import AccessEntry, AccessHistory
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode
from tests.support.audit_producers import sign
from tests.support.audit_store import stored_audit
from tests.support.produce import publish
from tests.support.suite import Suite
from tests.support.waiting import DEADLINE_S

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLI = Path(sys.executable).parent / "moment-audit"
# (minutes after BASE, actor, role, purpose, outcome, fields)
HISTORY: tuple[tuple[int, str, str, str | None, Outcome, tuple[str, ...]], ...] = (
    (0, "staff-a", "support-operator", "user-dealings", "success", ("email",)),
    (10, "staff-b", "privacy-officer", "legal-obligation", "success", ("name", "email")),
    (20, "staff-a", "support-operator", "marketing", "denied", ("phone",)),
    (30, "identity", "service", None, "failure", ("name",)),
)


def _event(
    subject_id: str, row: tuple[int, str, str, str | None, Outcome, tuple[str, ...]]
) -> Envelope:
    minutes, actor, role, purpose, outcome, fields = row
    body = PersonalDataAccessed(
        action="read",
        actor_id=actor,
        actor_role=role,
        subject_id=subject_id,
        fields=fields,
        purpose=purpose,
        outcome=outcome,
        occurred_at=BASE + timedelta(minutes=minutes),
    )
    return sign(Envelope.of(body, source="/moment/identity", subject=subject_id))


async def _seed(suite: Suite, subject_id: str) -> None:
    events = [_event(subject_id, row) for row in HISTORY]
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *events)
    rows = await stored_audit(suite, audit_records.c.subject_id == subject_id, expect=len(HISTORY))
    assert len(rows) == len(HISTORY)


@pytest.fixture(scope="module")
async def subject(suite: Suite) -> str:
    subject_id = str(uuid.uuid4())
    await _seed(suite, subject_id)
    return subject_id


@pytest.fixture(scope="module")
def audit_client(requests_client: RequestClient) -> AuditClient:
    return AuditClient(requests_client)


async def _search(suite: Suite, **filters: object) -> list[AccessEntry]:
    async with suite.audit.core.database.sessionmaker() as session:
        return await search(session, AccessQuery(**filters))  # type: ignore[arg-type]


async def _token(suite: Suite, principal: Principal) -> str:
    return (await TokenSigner(suite.identity.vault).issue(principal)).token


async def _cli(suite: Suite, *args: str) -> tuple[int, str]:
    # Rich reads COLUMNS: wide enough that no cell wraps mid-word.
    env = {**os.environ, "MOMENT_AUDIT_DATABASE__URL": suite.urls["audit"], "COLUMNS": "240"}
    process = await asyncio.create_subprocess_exec(
        str(CLI), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return process.returncode, out.decode()


async def test_search_by_subject_is_newest_first_with_names_not_values(
    suite: Suite, subject: str
) -> None:
    entries = await _search(suite, subject_id=subject)
    assert [e.occurred_at for e in entries] == [
        BASE + timedelta(minutes=m) for m in (30, 20, 10, 0)
    ]
    assert {e.subject_id for e in entries} == {subject}
    newest = entries[0]
    assert (newest.actor_id, newest.actor_role, newest.fields) == ("identity", "service", ("name",))
    assert (newest.purpose, newest.outcome, newest.action) == (None, "failure", "read")
    assert set(AccessEntry.model_fields) == {
        "occurred_at",
        "action",
        "actor_role",
        "actor_id",
        "subject_id",
        "fields",
        "purpose",
        "outcome",
    }


async def test_filters_by_actor_purpose_outcome_and_time(suite: Suite, subject: str) -> None:
    by_actor = await _search(suite, subject_id=subject, actor_id="staff-a")
    assert [e.purpose for e in by_actor] == ["marketing", "user-dealings"]
    by_purpose = await _search(suite, subject_id=subject, purpose="legal-obligation")
    assert [e.actor_id for e in by_purpose] == ["staff-b"]
    denied = await _search(suite, subject_id=subject, outcome="denied")
    assert [e.fields for e in denied] == [("phone",)]
    window = await _search(
        suite,
        subject_id=subject,
        since=BASE + timedelta(minutes=10),
        until=BASE + timedelta(minutes=20),
    )
    assert [e.occurred_at.minute for e in window] == [20, 10]
    limited = await _search(suite, subject_id=subject, limit=1)
    assert [e.occurred_at.minute for e in limited] == [30]


async def test_cli_search_prints_the_same_as_the_query(suite: Suite, subject: str) -> None:
    _, out = await _cli(suite, "search", "--subject", subject, "--json")
    printed = AccessHistory.model_validate_json(out)
    assert list(printed.entries) == await _search(suite, subject_id=subject)
    _, table = await _cli(suite, "search", "--subject", subject, "--actor", "staff-b")
    assert "legal-obligation" in table
    assert "marketing" not in table


async def test_cli_tail_prints_the_latest_records_oldest_first(suite: Suite, subject: str) -> None:
    _, out = await _cli(suite, "tail", "-n", "2", "--json")
    lines = [AccessEntry.model_validate_json(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert lines == list(reversed(await _search(suite, limit=2)))


async def _lines_until(stream: asyncio.StreamReader, marker: str, timeout_s: float) -> list[str]:
    lines: list[str] = []
    async with asyncio.timeout(timeout_s):
        while marker not in "".join(lines):
            line = await stream.readline()
            if not line:
                break
            lines.append(line.decode())
    return lines


async def test_cli_tail_follow_prints_new_records(suite: Suite, subject: str) -> None:
    # Rich reads COLUMNS: wide enough that no cell wraps mid-word.
    env = {**os.environ, "MOMENT_AUDIT_DATABASE__URL": suite.urls["audit"], "COLUMNS": "240"}
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        "tail",
        "-n",
        "1",
        "--follow",
        "--for",
        # Longer than both waits below: it must still follow when the newcomer arrives.
        str(int(2 * DEADLINE_S)),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)
        assert AccessEntry.model_validate_json(first)
        newcomer = str(uuid.uuid4())
        await publish(
            suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, _event(newcomer, HISTORY[0])
        )
        lines = await _lines_until(process.stdout, newcomer, DEADLINE_S)
        assert newcomer in "".join(lines)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def test_consent_and_the_subject_read_the_history(
    suite: Suite, subject: str, audit_client: AuditClient
) -> None:
    expected = tuple(await _search(suite, subject_id=subject))
    consent = await _token(suite, Principal.service(ServiceAccount.CONSENT))
    assert await audit_client.access_history(consent, subject_id=subject) == expected
    own = await _token(suite, Principal.customer(subject))
    assert await audit_client.access_history(own, subject_id=subject) == expected
    analyst = await _token(suite, Principal.staff("staff-sec", [Role.SECURITY_ANALYST]))
    denied = await audit_client.access_history(analyst, subject_id=subject, outcome="denied")
    assert [e.purpose for e in denied] == ["marketing"]


async def _refusal(client: AuditClient, token: str, subject_id: str | None) -> ErrorCode:
    with pytest.raises(ServiceError) as caught:
        await client.access_history(token, subject_id=subject_id)
    return caught.value.code


async def test_others_are_refused(suite: Suite, subject: str, audit_client: AuditClient) -> None:
    stranger = await _token(suite, Principal.customer(str(uuid.uuid4())))
    assert await _refusal(audit_client, stranger, subject) == ErrorCode.ACCESS_DENIED
    own = await _token(suite, Principal.customer(subject))
    assert await _refusal(audit_client, own, None) == ErrorCode.ACCESS_DENIED
    operator = await _token(suite, Principal.staff("staff-op", [Role.SUPPORT_OPERATOR]))
    assert await _refusal(audit_client, operator, subject) == ErrorCode.ACCESS_DENIED
    forged = (await _token(suite, Principal.service(ServiceAccount.CONSENT)))[:-4] + "AAAA"
    assert await _refusal(audit_client, forged, subject) == ErrorCode.UNAUTHORISED
