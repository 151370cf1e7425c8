"""The composition root: the only place that knows every concrete adapter."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from moment_auth.tokens import TokenSigner, TokenVerifier
from moment_contracts.sealed import public_key_from_text
from moment_contracts.topics import CORE_TOPICS
from moment_crypto.blind_index import BlindIndexer
from moment_crypto.envelope import FieldCipher, SubjectKeyring
from moment_crypto.errors import CryptoError
from moment_crypto.keysets import VersionedKeys
from moment_crypto.vault import VaultClient
from moment_identity.adapters.audit_emitter import (
    AuditEmitter,
    BrokerAckAudit,
    OutboxAudit,
    ProducerKey,
)
from moment_identity.adapters.endorsement import KeyEndorser
from moment_identity.adapters.hashing import Argon2Params, SecretHasher
from moment_identity.adapters.kafka import register_handlers
from moment_identity.adapters.orm import messaging
from moment_identity.adapters.reply_macs import ReplyMacs
from moment_identity.adapters.sealing import SealedInputOpener
from moment_identity.adapters.sessions import TokenSessionIssuer
from moment_identity.config import IdentitySettings
from moment_identity.domain.lockout import ThrottlePolicy
from moment_identity.service.callers import CallerCheck
from moment_identity.service.errors import to_error_reply
from moment_identity.service.handlers import IdentityHandlers
from moment_identity.service.login import LoginDeps
from moment_identity.service.principals import PrincipalDeps, StaffAdmin, service_secrets_from
from moment_identity.service.reads import ReadDeps
from moment_identity.service.recovery import CodeChannel, RecoveryDeps
from moment_identity.service.refusals import RefusalAudit
from moment_identity.service.registration import Crypto
from moment_identity.service.sealed_requests import RequestGuard
from moment_identity.service.unit_of_work import IdentityUnitOfWork
from moment_messaging.inbox import Inbox
from moment_messaging.producer import ResilientProducer
from moment_messaging.requests import RequestProcessor
from moment_persistence.database import Database
from moment_runtime.core import ServiceCore

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
# Key refreshes (one a minute) between two reloads of the producer MAC key.
PRODUCER_KEY_TICKS = 5


class IdentityService:
    name = "identity"

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        self.core = ServiceCore(
            name=self.name,
            kafka=settings.kafka,
            database=settings.database,
            telemetry=settings.telemetry,
            migrations=MIGRATIONS,
            tables=messaging,
            topics=CORE_TOPICS,
        )
        self.vault = VaultClient(settings.vault)
        self._handlers: IdentityHandlers | None = None
        self._audit_producer: ResilientProducer | None = None
        self._key_refresh: asyncio.Task[None] | None = None
        self._producer_key: ProducerKey | None = None
        register_handlers(self.core.broker, settings.kafka, self.handlers)

    def handlers(self) -> IdentityHandlers:
        if self._handlers is None:
            raise RuntimeError("identity received a message before start-up finished")
        return self._handlers

    def unit_of_work(self) -> IdentityUnitOfWork:
        return IdentityUnitOfWork(
            self.core.database, on_commit=self.core.relay.notify, sign=self._producer_key
        )

    async def _crypto(self) -> Crypto:
        cfg = self.settings.crypto
        await self.vault.start()
        params = Argon2Params(cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism)
        return Crypto(
            keyring=SubjectKeyring(self.vault, cfg.subject_key_name),
            cipher=FieldCipher(),
            indexer=await BlindIndexer.load(self.vault, cfg.blind_index_path),
            hasher=SecretHasher(await VersionedKeys.load(self.vault, cfg.pepper_path), params),
            opener=await SealedInputOpener.load(
                self.vault,
                cfg.sealing_key_path,
                box_max_age_s=self.settings.sealing.max_age_s,
                clock_skew_s=self.settings.sealing.clock_skew_s,
            ),
        )

    async def start(self) -> None:
        await self.core.prepare()
        crypto = await self._crypto()
        self._producer_key = await ProducerKey.load(
            self.vault, self.settings.crypto.audit_producer_key_path
        )
        login_deps = await self._login(crypto)
        sealing = self.settings.sealing
        refusals = RefusalAudit(self.unit_of_work)
        self.core.policy.on_refused = refusals.dead_lettered
        self.core.replier.authenticator = ReplyMacs(crypto.opener)
        self._handlers = IdentityHandlers(
            crypto=crypto,
            requests=RequestProcessor(
                self.unit_of_work,
                Inbox(messaging, self.name),
                self.core.replier,
                to_error_reply,
                metrics=self.core.metrics,
                on_refused=refusals.refused,
            ),
            replier=self.core.replier,
            uow_factory=self.unit_of_work,
            login_deps=login_deps,
            read_deps=await self._reads(crypto),
            principal_deps=await self._principals(login_deps),
            recovery_deps=self._recovery(login_deps),
            endorser=KeyEndorser(self.vault, self.settings.crypto.token_signing_key),
            # Past the window (and the skew either side) a box is stale, so its id can go.
            guard=RequestGuard(sealing.max_age_s + 2 * sealing.clock_skew_s + 60),
        )
        self._key_refresh = asyncio.create_task(self._refresh_keys(crypto, self._producer_key))
        await self.core.start_consuming()

    async def _refresh_keys(self, crypto: Crypto, producer_key: ProducerKey) -> None:
        """Other instances may rotate: reload now and then, so destroyed keys vanish here too,
        and a new producer MAC key is taken up. The producer key only every fifth time: a new
        version is made current after audit holds it (docs/audit.md), so a few minutes' delay
        costs nothing, and reads stay at well under one Vault call per thousand."""
        for tick in itertools.count(1):
            await asyncio.sleep(60)
            try:
                await crypto.opener.refresh(force=True)
                if tick % PRODUCER_KEY_TICKS == 0:
                    await producer_key.refresh()
            except CryptoError:
                log.warning("sealing or producer keys not refreshed: Vault unavailable")

    async def _reads(self, crypto: Crypto) -> ReadDeps:
        verifier = await TokenVerifier.from_vault(
            self.vault, self.settings.crypto.token_signing_key
        )
        audit: AuditEmitter = OutboxAudit()
        if self.settings.reads.audit_delivery == "broker":
            self._audit_producer = ResilientProducer(self.settings.kafka, "identity-audit")
            audit = BrokerAckAudit(self._audit_producer)
        return ReadDeps(
            crypto=crypto,
            callers=CallerCheck(crypto.opener, verifier),
            audit=audit,
            uow_factory=self.unit_of_work,
            rotate_sealing_key_on_erasure=self.settings.reads.rotate_sealing_key_on_erasure,
        )

    async def _login(self, crypto: Crypto) -> LoginDeps:
        cfg = self.settings.login
        signer = TokenSigner(self.vault, self.settings.crypto.token_signing_key, cfg.token_ttl_s)
        return LoginDeps(
            crypto=crypto,
            policy=ThrottlePolicy(
                cfg.account_max_failures, cfg.source_max_failures, cfg.window_s, cfg.lockout_s
            ),
            dummy_hash=await crypto.hasher.dummy_hash(),
            sessions=TokenSessionIssuer(signer),
            uow_factory=self.unit_of_work,
        )

    def _recovery(self, login: LoginDeps) -> RecoveryDeps:
        # The same lockout policy and dummy hash as login; the counters are kept apart.
        cfg = self.settings.recovery
        channel = None
        if cfg.code_channel and cfg.mailer_public_key:
            channel = CodeChannel(
                mailer_key=public_key_from_text(cfg.mailer_public_key),
                ttl_s=cfg.code_ttl_s,
                max_attempts=cfg.code_max_attempts,
                resend_after_s=cfg.code_resend_s,
            )
        return RecoveryDeps(
            crypto=login.crypto,
            policy=login.policy,
            dummy_hash=login.dummy_hash,
            uow_factory=self.unit_of_work,
            code_channel=channel,
        )

    async def _principals(self, login: LoginDeps) -> PrincipalDeps:
        cfg = self.settings
        signer = TokenSigner(self.vault, cfg.crypto.token_signing_key, cfg.login.token_ttl_s)
        secrets = await self.vault.read_kv(cfg.crypto.service_accounts_path)
        return PrincipalDeps(login, signer, service_secrets_from(secrets))

    async def stop(self) -> None:
        if self._key_refresh is not None:
            self._key_refresh.cancel()
        await self.core.stop()
        if self._audit_producer is not None:
            await self._audit_producer.stop()
        await self.vault.stop()


@asynccontextmanager
async def staff_admin(settings: IdentitySettings) -> AsyncIterator[StaffAdmin]:
    """What the operator's `staff` commands need: the database, the blind index and the pepper.
    No Kafka: revocation events go through the outbox, and the running service relays them."""
    cfg = settings.crypto
    database = Database(settings.database)
    vault = VaultClient(settings.vault)
    try:
        await vault.start()
        params = Argon2Params(cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism)
        producer_key = await ProducerKey.load(vault, cfg.audit_producer_key_path)
        yield StaffAdmin(
            indexer=await BlindIndexer.load(vault, cfg.blind_index_path),
            hasher=SecretHasher(await VersionedKeys.load(vault, cfg.pepper_path), params),
            uow_factory=lambda: IdentityUnitOfWork(database, sign=producer_key),
        )
    finally:
        await vault.stop()
        await database.dispose()
