"""Staff and service-account logins, staff accounts, and token revocation, over real Tansu, OpenBao
and PostgreSQL; the operator command and the dev demo set run as the real console script."""

from __future__ import annotations

import asyncio
import json
import secrets
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import get_args

import pytest

from moment_auth import PrincipalKind, Role, TokenRevoked, TokenVerifier
from moment_auth.revocation import RevocationList, apply_revocation
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.errors import ErrorCode
from moment_contracts.principals import PrincipalTokensRevoked, StaffRole
from moment_crypto import VaultClient, VaultConfig
from moment_crypto.errors import VaultPermissionDenied
from moment_devstack.demo_set import (
    DEMO_FILE,
    DEMO_ROLES,
    create_demo_set,
    demo_username,
    write_private,
)
from moment_devstack.stack import service_environment
from moment_devstack.vault_bootstrap import (
    SERVICE_ACCOUNTS_PATH,
    STOREFRONT,
    STOREFRONT_CREDENTIALS_PATH,
    ServiceCredentials,
)
from moment_identity.entrypoints.cli import EXIT_EXISTS
from moment_identity.service.principals import StaffAccountExists, StaffAdmin
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite
from tests.support.vault import VaultServer


@pytest.fixture(scope="module")
async def verifier(
    vault_config_factory: Callable[[str], VaultConfig],
) -> AsyncIterator[TokenVerifier]:
    """Tokens checked as another service would: the audit service's Vault role, offline."""
    vault = VaultClient(vault_config_factory("audit"))
    await vault.start()
    try:
        yield await TokenVerifier.from_vault(vault)
    finally:
        await vault.stop()


@pytest.fixture(scope="module")
def identity_environment(
    suite: Suite, vault_server: VaultServer, vault_bootstrap: dict[str, ServiceCredentials]
) -> dict[str, str]:
    """Identity's settings as `make run` gives them, for the operator command."""
    return service_environment(
        "identity",
        kafka=suite.kafka.bootstrap_servers,
        vault_url=vault_server.url,
        credentials=vault_bootstrap["identity"],
        database_url=suite.urls["identity"],
    )


def staff_admin(suite: Suite) -> StaffAdmin:
    crypto = suite.identity.handlers().crypto
    return StaffAdmin(crypto.indexer, crypto.hasher, suite.identity.unit_of_work)


async def new_staff(suite: Suite, *roles: Role) -> tuple[str, str, str]:
    """(staff id, username, password) of a fresh account."""
    username, password = f"staff_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    staff_id = await staff_admin(suite).create(username, password, roles)
    return staff_id, username, password


async def staff_error(
    client: IdentityClient, username: str, password: str, source: str = "desk-1"
) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await client.staff_login(username, password, source=source)
    return caught.value


async def run_cli(
    environment: dict[str, str], args: Sequence[str], stdin: str = ""
) -> tuple[int, str, str]:
    script = Path(sys.executable).parent / "moment-identity"
    process = await asyncio.create_subprocess_exec(
        str(script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_contract_roles_match_the_auth_roles() -> None:
    assert set(get_args(StaffRole)) == {role.value for role in Role}
    assert set(DEMO_ROLES) == {role.value for role in Role}


async def test_staff_login_returns_a_token_carrying_the_staff_roles(
    suite: Suite, identity_client: IdentityClient, verifier: TokenVerifier
) -> None:
    staff_id, username, password = await new_staff(suite, Role.PRIVACY_OFFICER, Role.ADMIN)
    got_id, roles, session = await identity_client.staff_login(
        username.upper(), password, source="desk-1"
    )
    assert got_id == staff_id
    assert roles == ("privacy-officer", "admin")
    verified = await verifier.verify(session.token)
    assert verified.principal.id == staff_id
    assert verified.principal.kind is PrincipalKind.STAFF
    assert verified.principal.roles == (Role.PRIVACY_OFFICER, Role.ADMIN)
    assert verified.principal.session_version == 0


async def test_every_staff_failure_looks_the_same(
    suite: Suite, identity_client: IdentityClient
) -> None:
    _, username, password = await new_staff(suite, Role.SUPPORT_OPERATOR)
    _, gone, gone_password = await new_staff(suite, Role.SUPPORT_OPERATOR)
    await staff_admin(suite).deactivate(gone)
    wrong_password = await staff_error(identity_client, username, "not the password")
    unknown = await staff_error(identity_client, f"nobody_{uuid.uuid4().hex[:8]}", password)
    deactivated = await staff_error(identity_client, gone, gone_password)
    assert wrong_password.reply == unknown.reply == deactivated.reply
    assert wrong_password.code == ErrorCode.LOGIN_FAILED


async def test_a_customer_password_is_no_staff_login(
    suite: Suite, identity_client: IdentityClient
) -> None:
    """Customer and staff usernames live in separate blind-index domains."""
    _, username, password = await new_staff(suite, Role.SUPPORT_OPERATOR)
    with pytest.raises(ServiceError) as caught:
        await identity_client.login(username, password, source="shop")
    assert caught.value.code == ErrorCode.LOGIN_FAILED


async def test_a_staff_account_locks_after_repeated_failures(
    suite: Suite, identity_client: IdentityClient
) -> None:
    _, username, password = await new_staff(suite, Role.SECURITY_ANALYST)
    limit = suite.identity.settings.login.account_max_failures
    for attempt in range(limit):
        error = await staff_error(identity_client, username, f"wrong {attempt}", f"s-{attempt}")
        assert error.code == ErrorCode.LOGIN_FAILED
    locked = await staff_error(identity_client, username, password, "another-desk")
    assert locked.code == ErrorCode.LOCKED_OUT
    assert locked.reply.retry_after_s


async def test_deactivation_revokes_every_token(
    suite: Suite, identity_client: IdentityClient, verifier: TokenVerifier
) -> None:
    staff_id, username, password = await new_staff(suite, Role.LEGAL_COUNSEL)
    _, _, session = await identity_client.staff_login(username, password, source="desk-2")
    record = await staff_admin(suite).deactivate(username)
    assert (record.active, record.session_version) == (False, 1)
    events = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: (
            header(r, "ce_type") == PrincipalTokensRevoked.ce_type
            and header(r, "ce_subject") == staff_id
        ),
    )
    assert len(events) == 1
    event = PrincipalTokensRevoked.model_validate_json(events[0].value or b"")
    assert event == PrincipalTokensRevoked(principal_id=staff_id, min_session_version=1)
    revocations = RevocationList()
    await verifier.verify(session.token, revocations=revocations)
    apply_revocation(event, revocations)
    with pytest.raises(TokenRevoked):
        await verifier.verify(session.token, revocations=revocations)
    refused = await staff_error(identity_client, username, password)
    assert refused.code == ErrorCode.LOGIN_FAILED


async def test_the_storefront_logs_in_with_its_secret_from_vault(
    identity_client: IdentityClient,
    verifier: TokenVerifier,
    vault_config_factory: Callable[[str], VaultConfig],
) -> None:
    async with VaultClient(vault_config_factory(STOREFRONT)) as vault:
        credentials = await vault.read_kv(STOREFRONT_CREDENTIALS_PATH)
        with pytest.raises(VaultPermissionDenied):
            await vault.read_kv(SERVICE_ACCOUNTS_PATH)
    session = await identity_client.service_login(STOREFRONT, credentials["secret"])
    verified = await verifier.verify(session.token)
    assert verified.principal.kind is PrincipalKind.SERVICE
    assert verified.principal.id == STOREFRONT
    assert verified.principal.roles == ()


async def test_a_wrong_service_secret_fails_uniformly(identity_client: IdentityClient) -> None:
    errors = []
    for service, secret in ((STOREFRONT, "wrong"), ("warehouse", "wrong"), ("consent", "")):
        with pytest.raises(ServiceError) as caught:
            await identity_client.service_login(service, secret)
        errors.append(caught.value.reply)
    assert errors[0].code == ErrorCode.LOGIN_FAILED
    assert errors[0] == errors[1] == errors[2]


async def test_staff_commands_work_against_the_real_database(
    identity_client: IdentityClient, identity_environment: dict[str, str]
) -> None:
    username, password = f"cli_{uuid.uuid4().hex[:10]}", secrets.token_urlsafe(16)
    create = ["staff", "create", "--username", username, "--role", "support-operator"]
    code, out, err = await run_cli(identity_environment, [*create, "--role", "admin"], password)
    assert code == 0, err
    staff_id = out.strip()
    assert staff_id.startswith("staff-")
    assert password not in out + err
    got_id, roles, _ = await identity_client.staff_login(username, password, source="cli")
    assert (got_id, roles) == (staff_id, ("support-operator", "admin"))
    again, _, _ = await run_cli(identity_environment, create, password)
    assert again == EXIT_EXISTS
    code, out, err = await run_cli(
        identity_environment, ["staff", "deactivate", "--username", username]
    )
    assert (code, out.strip()) == (0, staff_id), err
    refused = await staff_error(identity_client, username, password)
    assert refused.code == ErrorCode.LOGIN_FAILED


async def test_staff_create_refuses_a_weak_password(identity_environment: dict[str, str]) -> None:
    username = f"weak_{uuid.uuid4().hex[:8]}"
    create = ["staff", "create", "--username", username, "--role", "admin"]
    code, _, err = await run_cli(identity_environment, create, f"{username}!")
    assert code == 1
    assert "password:contains-identity" in err
    assert username not in err


async def test_a_taken_username_is_refused_in_process(suite: Suite) -> None:
    _, username, password = await new_staff(suite, Role.ADMIN)
    with pytest.raises(StaffAccountExists):
        await staff_admin(suite).create(username.upper(), password, [Role.ADMIN])


async def test_the_demo_set_creates_one_account_per_role(
    identity_client: IdentityClient,
    identity_environment: dict[str, str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = await asyncio.to_thread(create_demo_set, tmp_path, identity_environment)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    accounts = json.loads(path.read_text())
    assert set(accounts) == set(DEMO_ROLES)
    printed = capfd.readouterr()
    for role, account in accounts.items():
        assert account["username"] == demo_username(role)
        assert account["password"] not in printed.out + printed.err
    privacy = accounts["privacy-officer"]
    staff_id, roles, _ = await identity_client.staff_login(
        privacy["username"], privacy["password"], source="demo"
    )
    assert (staff_id, roles) == (privacy["staff_id"], ("privacy-officer",))


async def test_ensure_creates_keeps_or_resets_and_a_reset_revokes(
    suite: Suite, identity_client: IdentityClient
) -> None:
    admin = staff_admin(suite)
    username, password = f"ensure_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    staff_id, outcome = await admin.ensure(username, password, [Role.ADMIN])
    assert outcome == "created"
    assert await admin.ensure(username, password, [Role.ADMIN]) == (staff_id, "unchanged")
    new_password = secrets.token_urlsafe(16)
    assert await admin.ensure(username, new_password, [Role.ADMIN]) == (staff_id, "reset")
    events = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        timeout_s=60.0,
        where=lambda r: (
            header(r, "ce_type") == PrincipalTokensRevoked.ce_type
            and header(r, "ce_subject") == staff_id
        ),
    )
    event = PrincipalTokensRevoked.model_validate_json(events[0].value or b"")
    assert event == PrincipalTokensRevoked(principal_id=staff_id, min_session_version=1)
    refused = await staff_error(identity_client, username, password)
    assert refused.code == ErrorCode.LOGIN_FAILED
    got_id, _, _ = await identity_client.staff_login(username, new_password, source="ensure")
    assert got_id == staff_id


async def test_the_demo_set_run_twice_keeps_its_accounts_and_passwords(
    identity_client: IdentityClient, identity_environment: dict[str, str], tmp_path: Path
) -> None:
    first = json.loads(
        (await asyncio.to_thread(create_demo_set, tmp_path, identity_environment)).read_text()
    )
    second = json.loads(
        (await asyncio.to_thread(create_demo_set, tmp_path, identity_environment)).read_text()
    )
    assert first == second
    admin = second["admin"]
    staff_id, _, _ = await identity_client.staff_login(
        admin["username"], admin["password"], source="demo"
    )
    assert staff_id == admin["staff_id"]


async def test_a_demo_account_without_a_recorded_password_is_reset(
    suite: Suite,
    identity_client: IdentityClient,
    identity_environment: dict[str, str],
    tmp_path: Path,
) -> None:
    """As an attempt cut after writing the account but before recording its password left it."""
    username = demo_username("legal-counsel")
    unknown = secrets.token_urlsafe(16)
    staff_id, _ = await staff_admin(suite).ensure(username, unknown, [Role.LEGAL_COUNSEL])
    path = await asyncio.to_thread(create_demo_set, tmp_path, identity_environment)
    account = json.loads(path.read_text())["legal-counsel"]
    assert account["password"] != unknown
    assert account["staff_id"] == staff_id
    got_id, _, _ = await identity_client.staff_login(username, account["password"], source="demo")
    assert got_id == staff_id


async def test_a_demo_set_killed_after_recording_converges(
    suite: Suite,
    identity_client: IdentityClient,
    identity_environment: dict[str, str],
    tmp_path: Path,
) -> None:
    """As an attempt killed after recording the passwords, with only some accounts written."""
    recorded = {
        role: {"username": demo_username(role), "password": secrets.token_urlsafe(18)}
        for role in DEMO_ROLES
    }
    pending = {role: {**account, "staff_id": ""} for role, account in recorded.items()}
    write_private(tmp_path / DEMO_FILE, json.dumps(pending))
    officer = recorded["privacy-officer"]
    staff_id, _ = await staff_admin(suite).ensure(
        officer["username"], officer["password"], [Role.PRIVACY_OFFICER]
    )
    path = await asyncio.to_thread(create_demo_set, tmp_path, identity_environment)
    accounts = json.loads(path.read_text())
    assert accounts["privacy-officer"]["staff_id"] == staff_id
    for role, account in accounts.items():
        assert account["password"] == recorded[role]["password"]
        got_id, _, _ = await identity_client.staff_login(
            account["username"], account["password"], source="demo"
        )
        assert got_id == account["staff_id"]
