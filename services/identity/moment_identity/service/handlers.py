"""Use-case entry points, one per message type. FastStream adapters call these and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.identity import (
    GetSealingKey,
    Login,
    RecordGuardianConsent,
    RegisterUser,
    SealingKey,
)
from moment_contracts.principals import ServiceLogin, StaffLogin
from moment_contracts.profile import (
    ErasePersonalData,
    ExportPersonalData,
    ReadPersonalData,
    UpdatePersonalData,
)
from moment_contracts.recovery import AnswerRecovery, StartRecovery
from moment_identity.adapters.endorsement import KeyEndorser
from moment_identity.service.guardian import prepare_guardian_consent
from moment_identity.service.login import LoginDeps, prepare_login
from moment_identity.service.principals import (
    PrincipalDeps,
    prepare_service_login,
    prepare_staff_login,
)
from moment_identity.service.reads import ReadDeps, prepare_read
from moment_identity.service.recovery import RecoveryDeps, prepare_answer, prepare_start
from moment_identity.service.registration import Crypto, prepare_registration
from moment_identity.service.rights import prepare_erase, prepare_export, prepare_update
from moment_identity.service.sealed_requests import RequestGuard, Work
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
    read_deps: ReadDeps
    principal_deps: PrincipalDeps
    recovery_deps: RecoveryDeps
    endorser: KeyEndorser
    guard: RequestGuard

    async def _serve(
        self, request: Envelope, body: Contract, work: Work, *, remember: bool = True
    ) -> None:
        """Every sealed request: box refusals audited; a read (not remembered) served once."""
        guarded = self.guard.guard(request, body, work, once=not remember)
        await self.requests.handle(request, guarded, remember=remember)

    async def register_user(self, request: Envelope, body: RegisterUser) -> None:
        await self._serve(request, body, lambda: prepare_registration(self.crypto, request, body))

    async def login(self, request: Envelope, body: Login) -> None:
        await self._serve(request, body, lambda: prepare_login(self.login_deps, request, body))

    async def staff_login(self, request: Envelope, body: StaffLogin) -> None:
        deps = self.principal_deps
        await self._serve(request, body, lambda: prepare_staff_login(deps, request, body))

    async def service_login(self, request: Envelope, body: ServiceLogin) -> None:
        deps = self.principal_deps
        await self._serve(request, body, lambda: prepare_service_login(deps, request, body))

    async def start_recovery(self, request: Envelope, body: StartRecovery) -> None:
        deps = self.recovery_deps
        await self._serve(request, body, lambda: prepare_start(deps, request, body))

    async def answer_recovery(self, request: Envelope, body: AnswerRecovery) -> None:
        deps = self.recovery_deps
        await self._serve(request, body, lambda: prepare_answer(deps, request, body))

    async def read_personal_data(self, request: Envelope, body: ReadPersonalData) -> None:
        await self._serve(
            request, body, lambda: prepare_read(self.read_deps, request, body), remember=False
        )

    async def update_personal_data(self, request: Envelope, body: UpdatePersonalData) -> None:
        await self._serve(request, body, lambda: prepare_update(self.read_deps, request, body))

    async def export_personal_data(self, request: Envelope, body: ExportPersonalData) -> None:
        await self._serve(request, body, lambda: prepare_export(self.read_deps, request, body))

    async def erase_personal_data(self, request: Envelope, body: ErasePersonalData) -> None:
        await self._serve(request, body, lambda: prepare_erase(self.read_deps, request, body))

    async def record_guardian_consent(self, request: Envelope, body: RecordGuardianConsent) -> None:
        deps = self.read_deps
        await self._serve(request, body, lambda: prepare_guardian_consent(deps, request, body))

    async def get_sealing_key(self, request: Envelope, _body: GetSealingKey) -> None:
        # Public information, cheap to recompute: no inbox entry needed for a redelivery.
        key: SealingKey = await self.endorser.endorse(self.crypto.opener.public_key())
        await self.replier.send(request, key)
