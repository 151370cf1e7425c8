"""Every message type per topic: the single source for consumers' registries and for the docs."""

from __future__ import annotations

from moment_contracts import (
    alerts,
    audit,
    audit_chain,
    audit_queries,
    identity,
    principals,
    profile,
    recovery,
    topics,
)
from moment_contracts.base import Contract

TOPIC_MESSAGES: dict[str, tuple[type[Contract], ...]] = {
    topics.IDENTITY_COMMANDS: (
        identity.GetSealingKey,
        identity.RegisterUser,
        identity.Login,
        profile.ReadPersonalData,
        profile.UpdatePersonalData,
        profile.ExportPersonalData,
        profile.ErasePersonalData,
        identity.RecordGuardianConsent,
        principals.StaffLogin,
        principals.ServiceLogin,
        recovery.StartRecovery,
        recovery.AnswerRecovery,
    ),
    topics.IDENTITY_EVENTS: (
        identity.UserRegistered,
        principals.PrincipalTokensRevoked,
        recovery.RecoveryCodeIssued,
        profile.ProfileUpdated,
        profile.SubjectErased,
        identity.GuardianConsentRecorded,
    ),
    topics.AUDIT_EVENTS: (audit.PersonalDataAccessed,),
    topics.AUDIT_CHECKPOINTS: (audit_chain.CheckpointSigned, audit_chain.RetentionApplied),
    topics.AUDIT_OCSF: (audit.OcsfEvent,),
    topics.AUDIT_ALERTS: (alerts.AlertRaised,),
    topics.AUDIT_COMMANDS: (audit_queries.SearchAccess,),
}

# What identity answers on a caller's reply topic (besides moment.error.v1).
IDENTITY_REPLIES: tuple[type[Contract], ...] = (
    identity.SealingKey,
    identity.RegistrationAccepted,
    identity.LoginSucceeded,
    identity.GuardianConsentRecorded,
    principals.StaffLoginSucceeded,
    principals.ServiceLoginSucceeded,
    recovery.RecoveryChallenge,
    recovery.RecoveryCompleted,
    profile.PersonalData,
    profile.PersonalDataUpdated,
    profile.PersonalDataExport,
    profile.ErasureCompleted,
)

# What audit answers on a caller's reply topic (besides moment.error.v1).
AUDIT_REPLIES: tuple[type[Contract], ...] = (audit_queries.AccessHistory,)

# The plaintexts sealed inside a SealedBox (docs/contract.md, "Sealed boxes"), by (message, field).
# Their type names never travel: they name the JSON's schema and version for docs and generators.
_SEALED_CREDENTIALS: dict[tuple[type[Contract], str], type[Contract]] = {
    (request, "sealed_credentials"): profile.Credentials
    for request in TOPIC_MESSAGES[topics.IDENTITY_COMMANDS]
    if "sealed_credentials" in request.model_fields
}
SEALED_FIELDS: dict[tuple[type[Contract], str], type[Contract]] = {
    **_SEALED_CREDENTIALS,
    (identity.RegisterUser, "sealed"): identity.RegistrationFields,
    (identity.Login, "sealed"): identity.LoginFields,
    (principals.StaffLogin, "sealed"): principals.StaffLoginFields,
    (principals.ServiceLogin, "sealed"): principals.ServiceLoginFields,
    (recovery.StartRecovery, "sealed"): recovery.RecoveryStartFields,
    (recovery.AnswerRecovery, "sealed"): recovery.RecoveryAnswerFields,
    (profile.UpdatePersonalData, "sealed_changes"): profile.FieldChanges,
    (identity.LoginSucceeded, "sealed_session"): identity.Session,
    (principals.StaffLoginSucceeded, "sealed_session"): identity.Session,
    (principals.ServiceLoginSucceeded, "sealed_session"): identity.Session,
    (recovery.RecoveryChallenge, "sealed_question"): recovery.RecoveryQuestion,
    (profile.PersonalData, "sealed_values"): profile.PersonalDataValues,
    (profile.PersonalDataExport, "sealed_export"): profile.ExportDocument,
    (recovery.RecoveryCodeIssued, "sealed_code"): recovery.RecoveryCode,
}
SEALED_PLAINTEXTS: tuple[type[Contract], ...] = tuple(dict.fromkeys(SEALED_FIELDS.values()))
