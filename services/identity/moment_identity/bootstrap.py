"""The composition root: the only place that knows every concrete adapter."""

from __future__ import annotations

from pathlib import Path

from moment_auth.tokens import TokenSigner
from moment_contracts.topics import CORE_TOPICS
from moment_crypto.blind_index import BlindIndexer
from moment_crypto.envelope import FieldCipher, SubjectKeyring
from moment_crypto.keysets import VersionedKeys
from moment_crypto.vault import VaultClient
from moment_identity.adapters.hashing import Argon2Params, SecretHasher
from moment_identity.adapters.kafka import register_handlers
from moment_identity.adapters.orm import messaging
from moment_identity.adapters.sealing import SealedInputOpener
from moment_identity.adapters.sessions import TokenSessionIssuer
from moment_identity.config import IdentitySettings
from moment_identity.domain.lockout import ThrottlePolicy
from moment_identity.service.errors import to_error_reply
from moment_identity.service.handlers import IdentityHandlers
from moment_identity.service.login import LoginDeps
from moment_identity.service.registration import Crypto
from moment_identity.service.unit_of_work import IdentityUnitOfWork
from moment_messaging.inbox import Inbox
from moment_messaging.requests import RequestProcessor
from moment_runtime.core import ServiceCore

MIGRATIONS = Path(__file__).parent / "migrations"


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
        register_handlers(self.core.broker, settings.kafka, self.handlers)

    def handlers(self) -> IdentityHandlers:
        if self._handlers is None:
            raise RuntimeError("identity received a message before start-up finished")
        return self._handlers

    def unit_of_work(self) -> IdentityUnitOfWork:
        return IdentityUnitOfWork(self.core.database, on_commit=self.core.relay.notify)

    async def _crypto(self) -> Crypto:
        cfg = self.settings.crypto
        await self.vault.start()
        params = Argon2Params(cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism)
        return Crypto(
            keyring=SubjectKeyring(self.vault, cfg.subject_key_name),
            cipher=FieldCipher(),
            indexer=await BlindIndexer.load(self.vault, cfg.blind_index_path),
            hasher=SecretHasher(await VersionedKeys.load(self.vault, cfg.pepper_path), params),
            opener=SealedInputOpener(await VersionedKeys.load(self.vault, cfg.sealing_key_path)),
        )

    async def start(self) -> None:
        await self.core.prepare()
        crypto = await self._crypto()
        self._handlers = IdentityHandlers(
            crypto=crypto,
            requests=RequestProcessor(
                self.unit_of_work,
                Inbox(messaging, self.name),
                self.core.replier,
                to_error_reply,
                metrics=self.core.metrics,
            ),
            replier=self.core.replier,
            uow_factory=self.unit_of_work,
            login_deps=await self._login(crypto),
        )
        await self.core.start_consuming()

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

    async def stop(self) -> None:
        await self.core.stop()
        await self.vault.stop()
