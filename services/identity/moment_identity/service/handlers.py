"""Use-case entry points, one per message type. FastStream adapters call these and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moment_contracts.envelope import Envelope
from moment_contracts.identity import GetSealingKey, Login, RegisterUser, SealingKey
from moment_identity.service.login import LoginDeps, prepare_login
from moment_identity.service.registration import Crypto, prepare_registration
from moment_identity.service.unit_of_work import IdentityUnitOfWork
from moment_messaging.replies import Replier
from moment_messaging.requests import RequestProcessor


@dataclass(frozen=True)
class IdentityHandlers:
    crypto: Crypto
    requests: RequestProcessor[IdentityUnitOfWork]
    replier: Replier
    uow_factory: Callable[[], IdentityUnitOfWork]
    login_deps: LoginDeps

    async def register_user(self, request: Envelope, body: RegisterUser) -> None:
        await self.requests.handle(
            request, lambda: prepare_registration(self.crypto, request, body)
        )

    async def login(self, request: Envelope, body: Login) -> None:
        await self.requests.handle(request, lambda: prepare_login(self.login_deps, request, body))

    async def get_sealing_key(self, request: Envelope, _body: GetSealingKey) -> None:
        # Public information, cheap to recompute: no inbox entry needed for a redelivery.
        key: SealingKey = self.crypto.opener.public_key()
        await self.replier.send(request, key)
