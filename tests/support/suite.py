"""The three services running in the test process against real Tansu, OpenBao and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from pydantic import SecretStr

from moment_audit.bootstrap import build as build_audit
from moment_audit.config import AuditSettings
from moment_client.client import ClientConfig, RequestClient
from moment_client.identity import IdentityClient
from moment_consent.bootstrap import build as build_consent
from moment_consent.config import ConsentSettings
from moment_crypto.config import VaultConfig
from moment_identity.bootstrap import IdentityService
from moment_identity.config import IdentitySettings
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_runtime.basic import BasicService
from moment_telemetry.config import TelemetryConfig
from tests.support.audit_producers import PRODUCERS
from tests.support.postgres import PostgresDatabases

S = TypeVar("S", IdentitySettings, ConsentSettings, AuditSettings)


@dataclass
class Suite:
    kafka: KafkaConfig
    identity: IdentityService
    consent: BasicService
    audit: BasicService
    urls: dict[str, str]


def settings_for(cls: type[S], service: str, kafka: KafkaConfig, url: str, vault: VaultConfig) -> S:
    """A service's settings as `make run` would give them, pointed at the test's components."""
    return cls(
        kafka=kafka.model_copy(update={"client_id": service}),
        database=DatabaseConfig(url=SecretStr(url)),
        vault=vault,
        telemetry=TelemetryConfig(service_name=service, log_format="console"),
    )


def identity_settings(kafka: KafkaConfig, url: str, vault: VaultConfig) -> IdentitySettings:
    return settings_for(IdentitySettings, "identity", kafka, url, vault)


@pytest.fixture(scope="session")
async def suite(
    kafka_topics: KafkaConfig,
    vault_config_factory: Callable[[str], VaultConfig],
    postgres_database_factory: PostgresDatabases,
) -> AsyncIterator[Suite]:
    urls = {s: await postgres_database_factory.create(s) for s in ("identity", "consent", "audit")}
    kafka = kafka_topics
    identity = IdentityService(
        identity_settings(kafka, urls["identity"], vault_config_factory("identity"))
    )
    consent = build_consent(
        settings_for(
            ConsentSettings, "consent", kafka, urls["consent"], vault_config_factory("consent")
        )
    )
    audit = build_audit(
        settings_for(
            AuditSettings, "audit", kafka, urls["audit"], vault_config_factory("audit")
        ).model_copy(update={"producers": PRODUCERS})
    )
    services = (audit, consent, identity)
    for service in services:
        await service.start()
    yield Suite(kafka=kafka, identity=identity, consent=consent, audit=audit, urls=urls)
    for service in reversed(services):
        await service.stop()


@pytest.fixture(scope="session")
async def requests_client(suite: Suite) -> AsyncIterator[RequestClient]:
    client = RequestClient(
        ClientConfig(bootstrap_servers=suite.kafka.bootstrap_servers, source="/storefront/test")
    )
    await client.start()
    yield client
    await client.stop()


@pytest.fixture(scope="session")
def identity_client(requests_client: RequestClient) -> IdentityClient:
    return IdentityClient(requests_client)
